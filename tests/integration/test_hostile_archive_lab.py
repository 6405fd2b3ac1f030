"""The volumes' safe extraction ON a lab host, with the host's own /usr/bin/python3 (Debian 12: 3.11.2, which
has no tarfile.data_filter): hostile archives are refused and nothing is written outside the volume.

The collection's volumes.py, fsutil.py and module_glue.py are copied to the target host through `docker exec`
(the lab hosts are containers of this machine), with a docker_client.py that holds only ``hostname()`` (the
real one imports ansible.module_utils, which AnsiballZ ships in a real run and the bare host does not have).
"""
import io
import json
import os
import subprocess
import tarfile
import uuid

import pytest

pytestmark = pytest.mark.lab

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
UTILS = os.path.join(ROOT, "plugins", "module_utils")

DRIVER = r'''
import json, os, sys, tarfile
sys.path.insert(0, sys.argv[1])
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError
from ansible_collections.mec.migration.plugins.module_utils.volumes import extract_volumes_tar

work, cases = sys.argv[2], json.loads(sys.argv[3])
def shadow():
    st = os.stat("/etc/shadow")
    return [st.st_ino, st.st_nlink, st.st_mtime_ns, st.st_size]
def tree(path):
    out = []
    for d, dirs, files in os.walk(path):
        for n in sorted(dirs + files):
            full = os.path.join(d, n)
            out.append([os.path.relpath(full, path), os.lstat(full).st_mode])
    return out
report = {"python": sys.version.split()[0], "executable": sys.executable,
          "has_data_filter": hasattr(tarfile, "data_filter"), "cases": {}}
for case in cases:
    root = os.path.join(work, "vol-" + case)
    os.makedirs(root)
    before = (sorted(os.listdir("/tmp")), shadow(), tree(os.path.join(work, "outside")))
    res = {}
    try:
        with open(os.path.join(work, case + ".tar"), "rb") as fh:
            res["members"] = extract_volumes_tar(fh, {"data": root}, stream=True)
        res["refused"] = False
    except MigrationError as exc:
        res["refused"], res["message"] = True, str(exc)
    except Exception as exc:  # not a refusal: a crash (reported, and the test fails on it)
        res["refused"], res["crash"] = False, repr(exc)
    after = (sorted(os.listdir("/tmp")), shadow(), tree(os.path.join(work, "outside")))
    res["outside_unchanged"] = before == after
    res["tmp_new"] = sorted(set(after[0]) - set(before[0]))
    res["volume"] = tree(root)
    report["cases"][case] = res
print(json.dumps(report))
'''

STUB_DOCKER_CLIENT = '''import socket


def hostname():
    return socket.gethostname()
'''


def member(name, kind=tarfile.REGTYPE, data=b"", linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    info.mtime = 1700000000
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def tar_bytes(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, data)
    return buf.getvalue()


def hostile_cases(tag, work):
    """{case: (members, the member the refusal must name)}; every planted name carries ``tag``."""
    planted = "mec-hostile-%s" % tag
    return {
        "absolute_path": ([member("/tmp/%s-abs" % planted, data=b"x")], "/tmp/%s-abs" % planted),
        "dotdot_escape": ([member("data/../../../../../../../../tmp/%s-dotdot" % planted, data=b"x")],
                          "data/../../../../../../../../tmp/%s-dotdot" % planted),
        "symlink_to_tmp_then_file": ([member("data/t", tarfile.SYMTYPE, linkname="/tmp"),
                                      member("data/t/%s-sym" % planted, data=b"x")], "data/t"),
        "relative_symlink_to_tmp_then_file": ([member("data/t", tarfile.SYMTYPE, linkname="../" * 12 + "tmp"),
                                               member("data/t/%s-relsym" % planted, data=b"x")], "data/t"),
        "symlink_to_outside_dir_then_file": ([member("data/o", tarfile.SYMTYPE, linkname=work + "/outside"),
                                              member("data/o/%s-out" % planted, data=b"x")], "data/o"),
        "hardlink_to_etc_shadow": ([member("data/shadow", tarfile.LNKTYPE, linkname="/etc/shadow")], "data/shadow"),
        "hardlink_dotdot_to_etc_shadow": ([member("data/shadow", tarfile.LNKTYPE,
                                                  linkname="data/" + "../" * 12 + "etc/shadow")], "data/shadow"),
        "character_device": ([member("data/null", tarfile.CHRTYPE)], "data/null"),
        "block_device": ([member("data/disk", tarfile.BLKTYPE)], "data/disk"),
        "fifo": ([member("data/pipe", tarfile.FIFOTYPE)], "data/pipe"),
        "symlink_chain_escaping": ([member("data/d", tarfile.DIRTYPE),
                                    member("data/d/l2", tarfile.SYMTYPE, linkname="../.."),
                                    member("data/l1", tarfile.SYMTYPE, linkname="d/l2/tmp"),
                                    member("data/l1/%s-chain" % planted, data=b"x")], "data/d/l2"),
        "symlink_chain_through_parent_link": ([member("data/a", tarfile.DIRTYPE),
                                               member("data/a/f", tarfile.SYMTYPE, linkname=".."),
                                               member("data/a/l", tarfile.SYMTYPE, linkname="f/../tmp"),
                                               member("data/a/l/%s-parent" % planted, data=b"x")], "data/a/l"),
        "symlink_chain_through_dot": ([member("data/l", tarfile.SYMTYPE, linkname="f/../%s-dot" % planted),
                                       member("data/f", tarfile.SYMTYPE, linkname=".")], "data/l"),
    }


def docker_exec(host, argv, stdin=None, timeout=120):
    proc = subprocess.run(["docker", "exec", "-i", host] + argv, input=stdin, capture_output=True, timeout=timeout)
    assert proc.returncode == 0, (argv, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc.stdout


def put(host, path, data):
    docker_exec(host, ["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1"', "put", path], stdin=data)


def test_hostile_archives_are_refused_on_a_lab_host(lab_groups):
    host, _address = lab_groups["target"]
    tag = uuid.uuid4().hex[:10]
    work = "/var/tmp/mec-hostile-%s" % tag
    lib = work + "/lib"
    pkg = lib + "/ansible_collections/mec/migration/plugins/module_utils"
    cases = hostile_cases(tag, work)
    try:
        for sub in ("ansible_collections", "ansible_collections/mec", "ansible_collections/mec/migration",
                    "ansible_collections/mec/migration/plugins",
                    "ansible_collections/mec/migration/plugins/module_utils"):
            put(host, "%s/%s/__init__.py" % (lib, sub), b"")
        for name in ("volumes.py", "fsutil.py", "module_glue.py"):
            with open(os.path.join(UTILS, name), "rb") as fh:
                put(host, "%s/%s" % (pkg, name), fh.read())
        put(host, pkg + "/docker_client.py", STUB_DOCKER_CLIENT.encode())
        put(host, work + "/driver.py", DRIVER.encode())
        put(host, work + "/outside/secret", b"keep")
        for case, (members, _name) in cases.items():
            put(host, "%s/%s.tar" % (work, case), tar_bytes(members))
        # a legitimate volume as a control: the same code extracts it on the same host
        put(host, work + "/legit.tar", tar_bytes([
            member("data/dir", tarfile.DIRTYPE), member("data/dir/f", data=b"content"),
            member("data/dir/up", tarfile.SYMTYPE, linkname="../top"), member("data/top", data=b"top"),
            member("data/dir/hard", tarfile.LNKTYPE, linkname="data/dir/f")]))
        out = docker_exec(host, ["/usr/bin/python3", work + "/driver.py", lib, work,
                                 json.dumps(sorted(cases) + ["legit"])], timeout=300)
        report = json.loads(out)
        print("lab host %s: Python %s (%s), tarfile.data_filter: %s" % (
            host, report["python"], report["executable"], report["has_data_filter"]))
        results = report["cases"]
        legit = results.pop("legit")
        assert legit["refused"] is False and legit["members"] == 5, legit
        assert sorted(p for p, _mode in legit["volume"]) == ["dir", "dir/f", "dir/hard", "dir/up", "top"]
        for case, (_members, name) in cases.items():
            res = results[case]
            assert res["refused"] is True, (case, res)
            assert "Refused member %s " % name in res["message"], (case, res["message"])
            assert res["outside_unchanged"] is True, (case, res)
            assert res["tmp_new"] == [], (case, res)
        # nothing with the tag anywhere the archives aimed at
        leftovers = docker_exec(host, ["sh", "-c", "ls -d /tmp/*%s* /etc/*%s* %s/outside/*%s* 2>/dev/null; true"
                                       % (tag, tag, work, tag)])
        assert leftovers.strip() == b""
        # no device node or FIFO was made in any volume
        specials = docker_exec(host, ["find", work, "(", "-type", "b", "-o", "-type", "c", "-o", "-type", "p", ")"])
        assert specials.strip() == b""
    finally:
        subprocess.run(["docker", "exec", host, "rm", "-rf", work], capture_output=True, timeout=60)
