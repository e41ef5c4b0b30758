"""Local sweep execution without a W&B server: propose, run each trial as a real fit, record, resume.

Engine: optuna, not W&B's own ``sweeps`` package. That package runs offline but pins ``numpy<2``,
which breaks pyarrow (and with it ``datasets``); optuna's RandomSampler and TPESampler (bayes) draw
the same W&B parameter space through ``sweep_space.Param.suggest``, seeded. Grid points are
enumerated in W&B's order (product over parameters sorted by name) instead of optuna's GridSampler,
which visits points in random order and only knows its own study: plain enumeration lets a re-run
skip exactly the finished points.

Layout of ``--out``: ``sweep.json`` (what the folder belongs to), ``trials/<id>/`` (each fit's run
folder), ``trials/<id>.json`` (the trial record), ``trials/<id>.log`` (its output), ``results.csv``
and ``pareto.png``. A trial's id hashes its parameter values; a re-run skips finished ids, retries
failed ones (resuming from ``last.ckpt`` when fit left one) and feeds finished results to the sampler.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from espcn_lab.errors import Interrupted, UserError
from espcn_lab.sweep.process import SweepSignals, start_trial, stop_trials
from espcn_lab.sweep.report import plot_pareto, write_results
from espcn_lab.sweep.spec import (
    Sweep,
    check_sweep,
    expand_command,
    fingerprint,
    flatten_value,
    load_sweep,
    resolve_executable,
    trial_args,
    trial_id,
)

MAX_DUPLICATES = 100  # consecutive repeated proposals before a random/bayes space counts as exhausted


@dataclass
class Running:
    """A trial in flight: its record, process, log file and start time."""

    record: dict
    proc: subprocess.Popen
    log: Any
    started: float = field(default_factory=time.monotonic)


def _study(sweep: Sweep, seed: int, parallel: bool):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if sweep.method == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=parallel)
    direction = "maximize" if sweep.goal == "maximize" else "minimize"
    return optuna.create_study(sampler=sampler, direction=direction)


def _metric(record: dict, name: str) -> Optional[float]:
    value = record.get("summary", {}).get(name)
    ok = record["status"] == "finished" and isinstance(value, (int, float)) and math.isfinite(value)
    return float(value) if ok else None


class SweepRunner:
    """Runs one sweep into ``out``; ``run()`` returns a summary dict."""

    def __init__(self, sweep: Sweep, out: Path, overrides: list[str], count: Optional[int],
                 gpus: Optional[list[str]], seed: int):
        self.sweep, self.out, self.overrides, self.seed = sweep, out, list(overrides), seed
        self.trials_dir = out / "trials"
        self.slots: list[Optional[str]] = list(gpus) if gpus else [None]
        self.records = {r["id"]: r for r in self._load_records()}
        self.count = count or sweep.raw.get("run_cap")
        if sweep.method != "grid" and not self.count:
            raise UserError(f"{sweep.path}: method {sweep.method} needs --count N (or run_cap in the file)")
        self.study = None if sweep.method == "grid" else _study(sweep, seed, len(self.slots) > 1)
        self.pending: dict[str, Any] = {}  # trial id -> optuna trial awaiting its result

    def _load_records(self) -> list[dict]:
        self.out.mkdir(parents=True, exist_ok=True)
        self.trials_dir.mkdir(exist_ok=True)
        meta_path, key = self.out / "sweep.json", fingerprint(self.sweep, self.overrides)
        if meta_path.is_file() and json.loads(meta_path.read_text()).get("fingerprint") != key:
            raise UserError(f"{self.out} holds a different sweep or other overrides; use another --out")
        meta_path.write_text(json.dumps({"fingerprint": key, "sweep_file": str(self.sweep.path),
                                         "sweep": self.sweep.raw, "overrides": self.overrides}, indent=2, default=str))
        return [json.loads(p.read_text()) for p in sorted(self.trials_dir.glob("trial-*.json"))]

    def _finished(self) -> set[str]:
        return {i for i, r in self.records.items() if r["status"] == "finished"}

    def _grid_todo(self) -> list[dict]:
        names = [p.name for p in self.sweep.params]
        points = itertools.product(*(p.grid_values() for p in self.sweep.params))
        todo = [dict(zip(names, combo)) for combo in itertools.islice(points, self.count)]
        return [values for values in todo if trial_id(values) not in self._finished()]

    def _planned(self) -> int:
        """How many trials this run will start (random/bayes: fewer if the space runs out)."""
        return len(self._grid_todo()) if self.study is None else max(0, self.count - len(self._finished()))

    def _proposals(self) -> Iterator[tuple[dict, Any]]:
        """Yield (values, optuna trial or None) for trials still to run, skipping finished ones."""
        finished = self._finished()
        if self.study is None:
            yield from ((values, None) for values in self._grid_todo())
            return
        self._seed_study(finished)
        for r in sorted(self.records.values(), key=lambda r: r["number"]):  # interrupted trials resume first
            if r["status"] == "interrupted" and r.get("optuna"):
                self.study.enqueue_trial(r["optuna"]["params"])
        wanted, duplicates, seen = self.count - len(finished), 0, set(finished)
        while wanted > 0 and duplicates < MAX_DUPLICATES:
            trial = self.study.ask()
            values = {p.name: p.suggest(trial) for p in self.sweep.params}
            if trial_id(values) in seen:
                self._tell(trial, None)
                duplicates += 1
                continue
            seen.add(trial_id(values))
            duplicates, wanted = 0, wanted - 1
            yield values, trial

    def _seed_study(self, finished: set[str]) -> None:
        import optuna
        from optuna.distributions import json_to_distribution

        for tid in sorted(finished, key=lambda i: self.records[i]["number"]):
            r = self.records[tid]
            value = _metric(r, self.sweep.metric)
            if value is None or not r.get("optuna"):
                continue
            dists = {k: json_to_distribution(v) for k, v in r["optuna"]["distributions"].items()}
            self.study.add_trial(optuna.trial.create_trial(params=r["optuna"]["params"], distributions=dists,
                                                           value=value))

    def _tell(self, trial: Any, value: Optional[float]) -> None:
        from optuna.trial import TrialState

        if value is None:
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            self.study.tell(trial, value)

    def _launch(self, slot: Optional[str], values: dict, trial: Any) -> Running:
        from optuna.distributions import distribution_to_json

        tid = trial_id(values)
        run_dir = self.trials_dir / tid
        (run_dir / "summary.json").unlink(missing_ok=True)  # a stale summary must not pass for this attempt
        args = trial_args(self.sweep, values, self.overrides, self.trials_dir, tid)
        if (run_dir / "last.ckpt").is_file() and not any(k == "run.resume" for k, _ in args):
            args.append(("run.resume", "last"))
        json_file = self.trials_dir / f"args-{tid}.json"  # for ${args_json_file}
        json_file.write_text(json.dumps(dict(args), default=str))
        argv = expand_command(self.sweep.command, self.sweep.raw.get("program"), args, json_file)
        argv[0] = resolve_executable(argv[0]) or argv[0]
        number = self.records[tid]["number"] if tid in self.records else len(self.records)
        optuna_state = None if trial is None else {
            "params": trial.params, "distributions": {k: distribution_to_json(d) for k, d in trial.distributions.items()}}
        flat = {k: v for name, value in values.items() for k, v in flatten_value(name, value).items()}
        record = {"id": tid, "number": number, "values": values, "flat": flat, "optuna": optuna_state,
                  "status": "running", "gpu": slot, "argv": argv, "error": "", "summary": {}}
        self._save(record)
        env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": slot} if slot is not None else {}))
        log = (self.trials_dir / f"{tid}.log").open("w")
        proc = start_trial(argv, env, log)
        if trial is not None:
            self.pending[tid] = trial
        return Running(record, proc, log)

    def _finish(self, job: Running) -> dict:
        job.log.close()
        record, rc = job.record, job.proc.returncode
        summary_path = self.trials_dir / record["id"] / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        status = summary.get("status", "failed")
        if rc != 0 and status == "finished":
            status = "failed"
        record.update(status=status, returncode=rc, summary=summary, seconds=round(time.monotonic() - job.started, 2))
        if status != "finished":
            tail = (self.trials_dir / f"{record['id']}.log").read_text(errors="replace").strip().splitlines()[-12:]
            record["error"] = f"exit {rc}: " + " | ".join(tail)[-2000:]
        self._save(record)
        if record["id"] in self.pending:
            self._tell(self.pending.pop(record["id"]), _metric(record, self.sweep.metric))
        return record

    def _save(self, record: dict) -> None:
        self.records[record["id"]] = record
        path = self.trials_dir / f"{record['id']}.json"
        path.with_suffix(".tmp").write_text(json.dumps(record, indent=2, default=str))
        path.with_suffix(".tmp").replace(path)
        write_results(list(self.records.values()), self.out / "results.csv")

    def run(self) -> dict:
        """Run every remaining trial, one per slot (GPU) at a time; returns counts, paths and the best trial.

        SIGINT/SIGTERM/SIGHUP stop the running trials (they save their state), record them as ``interrupted`` and
        raise ``Interrupted``; running the same command again resumes them.
        """
        from tqdm import tqdm

        proposals, running, ran = self._proposals(), {}, []
        free = list(self.slots)
        bar = tqdm(total=self._planned(), desc=f"sweep {self.sweep.path.name}", unit="trial", dynamic_ncols=True)
        with SweepSignals() as signals:
            try:
                while not signals.signum:
                    while free and not signals.signum and (nxt := next(proposals, None)) is not None:
                        slot = free.pop(0)
                        running[slot] = self._launch(slot, *nxt)
                    if not running:
                        break
                    time.sleep(0.2)
                    for slot, job in list(running.items()):
                        if job.proc.poll() is not None:
                            ran.append(self._finish(running.pop(slot)))
                            free.append(slot)
                            bar.update(1)
                            bar.set_postfix_str(f"{ran[-1]['status']} {ran[-1]['id']}")
                stopped = self._stop(running, signals) if signals.signum else 0
            except BaseException:
                self._stop(running, signals)
                raise
            finally:
                bar.close()
                plot_pareto(list(self.records.values()), self.out / "pareto.png")
        if signals.signum:
            name = signal.Signals(signals.signum).name
            raise Interrupted(f"sweep stopped by {name} ({len(ran)} trial(s) done, {stopped} interrupted, recorded in "
                              f"{self.out / 'results.csv'}); run the same command to resume", signals.signum)
        return self._summary(ran)

    def _stop(self, running: dict, signals: SweepSignals) -> int:
        """Stop the running trials (their state saved when they can), record them as interrupted; how many."""
        stop_trials([job.proc for job in running.values()], signals.signum or signal.SIGTERM, signals)
        for job in running.values():
            record = self._finish(job)
            record.update(status="interrupted",
                          error=f"sweep interrupted (trial exit {job.proc.returncode}); " + record.get("error", ""))
            self._save(record)
        count = len(running)
        running.clear()
        return count

    def _summary(self, ran: list[dict]) -> dict:
        records = list(self.records.values())
        scored = [r for r in records if _metric(r, self.sweep.metric) is not None]
        sign = 1 if self.sweep.goal == "maximize" else -1
        best = max(scored, key=lambda r: sign * _metric(r, self.sweep.metric), default=None)
        return {"out": str(self.out), "results": str(self.out / "results.csv"), "pareto": str(self.out / "pareto.png"),
                "ran": len(ran), "failed": sum(r["status"] != "finished" for r in ran),
                "finished_total": sum(r["status"] == "finished" for r in records), "trials_total": len(records),
                "metric": self.sweep.metric, "best": best}


def run_sweep(sweep_path: str | Path, out: str | Path, overrides: list[str] = (), count: Optional[int] = None,
              gpus: Optional[list[str]] = None, seed: int = 0, check_only: bool = False) -> dict:
    """Validate a W&B sweep file and (unless ``check_only``) run it locally; returns a summary dict."""
    sweep = load_sweep(sweep_path)
    checked = check_sweep(sweep, list(overrides), seed)
    if check_only:
        return {"sweep": str(sweep.path), "method": sweep.method, "checked_configs": checked,
                "parameters": [p.name for p in sweep.params], "config": str(sweep.config_path)}
    if count is not None and count < 1:
        raise UserError(f"--count must be >= 1, got {count}")
    return SweepRunner(sweep, Path(out), list(overrides), count, gpus, seed).run()
