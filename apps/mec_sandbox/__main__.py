"""Command line: ``PYTHONPATH=apps python -m mec_sandbox [options]``."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from .auth import AUTH_ENV, AuthConfigError, Authority
from .callbacks import LOOPBACK, CallbackPolicy, listen_address, parse_networks
from .mobility import PLACEMENTS, Placement
from .notify import Notifier
from .scenario import DEFAULT_PRIORITY, ScenarioError, add_clones, load_scenario
from .server import Sandbox, build_app


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m mec_sandbox",
                                 description="Local ETSI MEC Sandbox: MEC 013 location/v2, MEC 012 rni/v2, "
                                             "MEC 021 amsi/v1 over a moving AdvantEDGE scenario.")
    ap.add_argument("--scenario", help="AdvantEDGE scenario JSON (default: packaged 4g-5g-wifi-macro, Monaco)")
    ap.add_argument("--host", default="127.0.0.1",
                    help="listen address (default 127.0.0.1), or a network in CIDR notation to listen on this "
                         "machine's address in it, e.g. 172.30.77.0/24 (the container's address on the lab network)")
    ap.add_argument("--port", type=int, default=8080, help="listen port (default 8080)")
    ap.add_argument("--base-path", default="", help="prefix of every path, e.g. /sbx1234 (the sandbox's "
                                                    "/{sandbox}); MEP-scoped paths /{base}/{mep}/... work too")
    ap.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second; 0 = clock "
                                                             "moves only through POST sandbox-ctrl/v1/clock")
    ap.add_argument("--step", type=float, default=0.05, help="simulation step, simulated seconds (default 0.05)")
    ap.add_argument("--tick", type=float, default=0.01,
                    help="real seconds between clock checks (default 0.01); a step's changes are seen "
                         "at most one tick after their simulated instant")
    ap.add_argument("--start-time", type=float, default=None,
                    help="simulated time 0 as a Unix time (default: when the server starts)")
    ap.add_argument("--placement", choices=PLACEMENTS, default="per-zone",
                    help="which MEC host serves a UE (default per-zone)")
    ap.add_argument("--coverage", help="for --placement coverage: 'mep1:zone01:zone02:zone03/mep2:zone04' "
                                       "(default: each EDGE node of the scenario covers its own zone)")
    ap.add_argument("--priority", default=",".join(DEFAULT_PRIORITY[:3]),
                    help="access point type priority, most preferred first (default wifi,5g,4g)")
    ap.add_argument("--ue-count", type=int, default=0,
                    help="add copies of the moving UEs (spread along their paths) up to this many UEs")
    ap.add_argument("--public-url", default="", help="scheme://host:port used in resourceURL and links "
                                                     "(default: from each request's Host header)")
    ap.add_argument("--callback-networks", default=",".join(LOOPBACK),
                    help="networks (CIDRs, comma-separated) that subscription callbacks may point to; a "
                         "subscription whose callback is elsewhere is refused with 400 (default: loopback, "
                         f"{','.join(LOOPBACK)})")
    ap.add_argument("--callback-ca", default=None,
                    help="CA certificates (PEM) that https callbacks' certificates are verified against "
                         "(default: the system's CAs); the host name is checked too")
    ap.add_argument("--auth-file", default=None,
                    help="the OAuth 2.0 client credentials configuration (JSON, from 'python -m "
                         f"mec_sandbox.credentials DIR': DIR/sandbox-auth.json); default: the JSON in ${AUTH_ENV}. "
                         "Required: every request but POST <base>/oauth/token needs a bearer token")
    ap.add_argument("--notify-timeout", type=float, default=2.0, help="seconds per callback POST (default 2)")
    ap.add_argument("--notify-retries", type=int, default=2, help="retries per notification (default 2)")
    ap.add_argument("--log-level", default="INFO")
    return ap.parse_args(argv)


def make_sandbox(args: argparse.Namespace) -> Sandbox:
    priority = tuple(s.strip() for s in args.priority.split(",") if s.strip())
    scenario = load_scenario(args.scenario, priority=priority)
    if args.ue_count:
        add_clones(scenario, args.ue_count)
    placement = Placement(scenario, args.placement, coverage=args.coverage)
    base = "/" + args.base_path.strip("/") if args.base_path.strip("/") else ""
    policy = CallbackPolicy(parse_networks(args.callback_networks))
    try:
        notifier = Notifier(timeout=args.notify_timeout, retries=args.notify_retries,
                            resolver_factory=policy.resolver, ca_file=args.callback_ca)
    except OSError as exc:  # ssl.SSLError is an OSError
        raise ValueError(f"--callback-ca {args.callback_ca}: not a readable PEM file of CA certificates ({exc})") \
            from None
    return Sandbox(scenario, placement, base_path=base, speed=args.speed, step=args.step, tick=args.tick,
                   start_epoch=args.start_time, public_url=args.public_url, callback_policy=policy,
                   notifier=notifier)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        host = listen_address(args.host)
        sandbox = make_sandbox(args)
        authority = Authority.load(args.auth_file)
    except AuthConfigError as exc:
        print(f"mec_sandbox: authentication: {exc}", file=sys.stderr)
        return 2
    except ScenarioError as exc:
        print(f"mec_sandbox: bad scenario: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"mec_sandbox: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("mec_sandbox").info(
        "scenario %s: %d UEs, %d access points, zones %s; placement %s; speed %s; serving on %s:%d%s; "
        "callbacks allowed to %s; %d OAuth client(s)",
        sandbox.scenario.name, len(sandbox.scenario.ues), len(sandbox.scenario.poas), sandbox.scenario.zones,
        sandbox.placement.mode, args.speed, host, args.port, sandbox.base or "/", sandbox.policy.describe(),
        len(authority.clients))
    web.run_app(build_app(sandbox, authority), host=host, port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
