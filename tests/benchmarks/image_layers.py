#!/usr/bin/env python3
"""Benchmark: m2's image step for A2, full archive against only the missing layers, between the lab's hosts.

Each run commits the running A2 container on the source (mec.migration.container_commit, the engine pauses it as
in m2), writes the image archive (mec.migration.image_save), copies it to the target (mec.migration.file_transfer,
scp, as migrate.yml) and loads it there (mec.migration.image_load); the figures are the modules' own durations, as
the migration record counts them, not Ansible's overhead around them. Variants, alternated run by run:

* ``full``:    image_save with method save and no skip_chain_ids: `docker save` of the whole image, as before;
* ``trimmed``: mec.migration.image_layers_info on the target first (its duration is reported apart: in a migration
  it is part of the target's preflight), then image_save with skip_chain_ids (method auto: layerdb, the layer tars
  rebuilt from the engine's store);
* ``trimmed-save``: the same with method save (`docker save` streamed, the present layers' tars dropped), the
  fallback on engines whose store cannot be read.

The container runs on the lab's source (or on its target, after a migration: then the hosts swap roles). The target
holds A2's image (loaded from the source when it lacks it), as after a first migration: "the target
holds the base layers". Each run's image is removed from both hosts afterwards. Prints per run and the medians,
min and max; writes the raw runs to benchmarks/results/<name>.json (tests/benchmarks/results_file.py).

    .venv/bin/python tests/benchmarks/image_layers.py --runs 6
"""
import argparse
import os
import subprocess
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import results_file  # noqa: E402
from labtools import KEY, SSH_OPTS, Host, lab_hosts  # noqa: E402
from test_image_layers_lab import WORK, module, ok  # noqa: E402

STEPS = ("commit", "save", "copy", "load")
VARIANTS = ("full", "trimmed", "trimmed-save")


def ensure_image_on_target(src, dst, image):
    """The target holds ``image`` (the source's very image): docker save on the source | docker load there."""
    want = src.docker("image", "inspect", "-f", "{{.Id}}", image)
    if dst.run(["docker", "image", "inspect", "-f", "{{.Id}}", image], check=False).stdout.strip() == want:
        return False
    save = subprocess.Popen(["ssh", "-i", KEY] + SSH_OPTS + ["root@" + src.address, "docker save " + image],
                            stdout=subprocess.PIPE)
    try:
        dst.run(["docker", "load"], stdin=save.stdout, timeout=600)
    finally:
        save.stdout.close()
        save.wait()
    return True


def one_run(hosts, variant, container, i, tag):
    s, t, src, dst, dst_address = hosts
    ref = "mec-migration/h6bench-%s:%s-%d" % (container, tag, i)
    work = "%s/h6bench-%s-%d" % (WORK, tag, i)
    run = {"variant": variant, "run": i}
    try:
        for h in (src, dst):
            h.run(["install", "-d", "-m", "0700", work])
        commit = ok(module(s, "container_commit", name=container, image=ref), "container_commit")
        run["commit"] = commit["duration"]
        run["commit_freeze"] = commit.get("freeze_duration")
        skip = []
        if variant.startswith("trimmed"):
            info = ok(module(t, "image_layers_info"), "image_layers_info")
            run["layers_info"] = info["duration"]
            skip = info["chain_ids"]
        save = ok(module(s, "image_save", image=ref, dest=work + "/image.tar", skip_chain_ids=skip,
                         method="auto" if variant == "trimmed" else "save"), "image_save")
        copy = ok(module(s, "file_transfer", src=work + "/image.tar", dest_host=dst_address, dest=work + "/image.tar",
                         method="scp"), "file_transfer")
        load = ok(module(t, "image_load", src=work + "/image.tar", image=ref), "image_load")
        run.update(save=save["duration"], copy=copy["duration"], load=load["duration"], method=save["method"],
                   bytes_written=save["bytes_written"], bytes_skipped=save["bytes_skipped"],
                   layers_sent=save["layers_sent"], layers_skipped=save["layers_skipped"],
                   layers_loaded=load["layers_loaded"], layers_present=load["layers_present"])
        run["ops"] = round(sum(run[k] for k in STEPS), 6)
        run["ops_with_layers_info"] = round(run["ops"] + run.get("layers_info", 0.0), 6)
    finally:
        for h in (src, dst):
            h.run(["docker", "image", "rm", "-f", ref], check=False)
            h.run(["rm", "-rf", work], check=False)
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=6, help="runs per variant (alternated)")
    ap.add_argument("--container", default="a2", help="the running container on the source (default A2's)")
    ap.add_argument("--image", default="mec-apps/a2:latest", help="its image, made present on the target")
    ap.add_argument("--name", default="image-layers-a2", help="results file benchmarks/results/<name>.json")
    args = ap.parse_args()
    names = lab_hosts()
    src, dst = Host(names["source"]), Host(names["target"])
    if not src.running(args.container) and dst.running(args.container):  # a migration left it on the target
        names = {"source": names["target"], "target": names["source"]}
        src, dst = dst, src
    if not src.running(args.container):
        sys.exit("%s runs on neither lab host: bring the apps up (playbooks/apps.yml)" % args.container)
    loaded_base = ensure_image_on_target(src, dst, args.image)
    image_size = int(src.docker("image", "inspect", "-f", "{{.Size}}", args.image))
    hosts = (names["source"].name, names["target"].name, src, dst, names["target"].address)
    tag = uuid.uuid4().hex[:8]
    results_file.start()
    runs = []
    for i in range(args.runs):
        for variant in VARIANTS[i % len(VARIANTS):] + VARIANTS[:i % len(VARIANTS)]:  # each first in turn
            r = one_run(hosts, variant, args.container, i, tag)
            runs.append(r)
            print("%-8s run %d: commit %.3f save %.3f copy %.3f load %.3f = %.3f s  (%s, %d B sent, %d layers sent,"
                  " %d skipped%s)" % (variant, i, r["commit"], r["save"], r["copy"], r["load"], r["ops"], r["method"],
                                      r["bytes_written"], r["layers_sent"], r["layers_skipped"],
                                      ", layers_info %.3f" % r["layers_info"] if "layers_info" in r else ""),
                  flush=True)
    summary = {}
    for variant in VARIANTS:
        mine = [r for r in runs if r["variant"] == variant]
        summary[variant] = {k: results_file.summarize([r[k] for r in mine])
                            for k in STEPS + ("ops", "ops_with_layers_info", "bytes_written")}
        if variant.startswith("trimmed"):
            summary[variant]["layers_info"] = results_file.summarize([r["layers_info"] for r in mine])
    path = results_file.write_results(args.name, runs, summary, extra={
        "container": args.container, "image": args.image, "image_size": image_size,
        "target_had_image_loaded_by_benchmark": loaded_base, "steps": list(STEPS),
        "source": names["source"].name, "target": names["target"].name})
    print()
    print("%-22s %-28s %-28s %-28s" % ("", "full (docker save)", "trimmed (layerdb)", "trimmed-save"))
    for k in STEPS + ("ops", "ops_with_layers_info", "bytes_written"):
        cells = []
        for variant in VARIANTS:
            f = summary[variant][k]
            fmt = "%.0f [%.0f-%.0f]" if k == "bytes_written" else "%.3f [%.3f-%.3f]"
            cells.append(fmt % (f["median"], f["min"], f["max"]))
        print("%-22s %-28s %-28s %-28s" % (k, cells[0], cells[1], cells[2]))
    print("load average before %s after %s; raw results: %s" % (
        results_file.load_results(path)["loadavg_before"], results_file.load_results(path)["loadavg_after"],
        os.path.relpath(str(path))))


if __name__ == "__main__":
    main()
