#!/usr/bin/env python3
"""Runs ansible-playbook under cProfile, its main process and each of its forked workers (one task on one host)
separately: ``python ansible_cprofile.py OUTDIR ansible-playbook-args...`` writes OUTDIR/main.prof,
OUTDIR/worker-<pid>.prof and OUTDIR/worker-<pid>.json ([pid, task name, host, CPU seconds]); with --cpu-only
first, only the CPU times (no profiler, so they are the real ones). Used by migrate_overhead.py --cprofile; print
the result with ``python ansible_cprofile.py --report OUTDIR``.

A worker is a fork of the main process (ansible.utils.multiprocessing: fork) that ends with os._exit, so a profile
started in the main process never reaches the worker's; here each worker's TaskExecutor.run is profiled and dumped
by itself. The CPU of Mitogen's connection process (with the mec.migration.mitogen_linear strategy) is in neither:
set MITOGEN_PROFILING=1 for its own profiles (/tmp/mitogen.stats.*)."""
import cProfile
import json
import os
import pstats
import resource
import sys


def profile_workers(outdir, cpu_only=False):
    """Each worker's TaskExecutor.run (templating the task, the action plugin, the connection) profiled and timed
    in the worker, and written before the worker sends its result: the strategy may end the last workers of a play
    as soon as their results are in."""
    from ansible.executor.process import worker

    class TimedTaskExecutor(worker.TaskExecutor):
        def run(self):
            profiler = cProfile.Profile()
            before = resource.getrusage(resource.RUSAGE_SELF)
            if not cpu_only:
                profiler.enable()
            try:
                return super().run()
            finally:
                after = resource.getrusage(resource.RUSAGE_SELF)
                if not cpu_only:
                    profiler.disable()
                    profiler.dump_stats(os.path.join(outdir, "worker-%d.prof" % os.getpid()))
                cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                with open(os.path.join(outdir, "worker-%d.json" % os.getpid()), "w") as fh:
                    json.dump([os.getpid(), self._task.get_name(), self._host.name, cpu], fh)

    worker.TaskExecutor = TimedTaskExecutor


def run(outdir, argv, cpu_only=False):
    os.makedirs(outdir, exist_ok=True)
    profile_workers(outdir, cpu_only)
    from ansible.cli.playbook import PlaybookCLI

    sys.argv = ["ansible-playbook"] + argv
    profiler = cProfile.Profile()
    if not cpu_only:
        profiler.enable()
    try:
        PlaybookCLI.cli_executor(sys.argv)
    except SystemExit as e:
        code = e.code
    else:
        code = 0
    finally:
        if not cpu_only:
            profiler.disable()
            profiler.dump_stats(os.path.join(outdir, "main.prof"))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        with open(os.path.join(outdir, "main.json"), "w") as fh:
            json.dump({"cpu": usage.ru_utime + usage.ru_stime}, fh)
    return code


def report(outdir, top=25):
    workers = []
    for name in sorted(os.listdir(outdir)):
        if name.startswith("worker-") and name.endswith(".json"):
            with open(os.path.join(outdir, name)) as fh:
                workers.append(json.load(fh))
    if os.path.exists(os.path.join(outdir, "main.json")):
        with open(os.path.join(outdir, "main.json")) as fh:
            print("main process: CPU %.2f s (its own, not its children's)" % json.load(fh)["cpu"])
    print("workers: %d, CPU %.2f s in all (their own; the ssh clients they start are not counted)"
          % (len(workers), sum(w[3] for w in workers)))
    for _pid, task, host, cpu in sorted(workers, key=lambda w: -w[3])[:15]:
        print("  %5.2f s  %-16s %s" % (cpu, host, task[:90]))
    if not os.path.exists(os.path.join(outdir, "main.prof")):
        return
    main = pstats.Stats(os.path.join(outdir, "main.prof"))
    print("\nmain process, cumulative:")
    main.sort_stats("cumulative").print_stats(top)
    print("main process, own time:")
    main.sort_stats("tottime").print_stats(top)
    # a worker killed before its dump (a task the strategy ended) leaves an empty file
    files = [os.path.join(outdir, n) for n in os.listdir(outdir)
             if n.startswith("worker-") and n.endswith(".prof") and os.path.getsize(os.path.join(outdir, n)) > 0]
    if files:
        merged = pstats.Stats(*files)
        print("all workers merged, cumulative:")
        merged.sort_stats("cumulative").print_stats(top)
        print("all workers merged, own time:")
        merged.sort_stats("tottime").print_stats(top)


if __name__ == "__main__":
    if sys.argv[1] == "--report":
        report(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 25)
    elif sys.argv[1] == "--cpu-only":
        sys.exit(run(sys.argv[2], sys.argv[3:], cpu_only=True))
    else:
        sys.exit(run(sys.argv[1], sys.argv[2:]))
