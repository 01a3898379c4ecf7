"""Load tests for fnserve: the harness that `make bench` runs (`benchmarks/run.py`) and its parts.

`targets.py` says how to start each server under test (the bare app, fnserve), `peer_targets.py` the peers
(LitServe, BentoML, Ray Serve: apps in `peers/`, each installed into its own venv outside the repo by
`peer_envs.py`), `scenarios.py` what request to load them with, `wrk.py` drives the load generator, `probes.py`
sends single requests (and times a stream's first chunk), `procs.py` handles processes, memory and CPU time,
`suite.py` runs them side by side, `goals.py` checks the issue's goals, and `report.py` renders the tables and
`RESULTS.md` (with `markdown.py` and `environment.py`). `jobs.py` measures the job queue
(jobs/s submitted and completed, submit → COMPLETED latency) into `JOBS_RESULTS.md`.
`cold_start.py` times upload → ACTIVE, a call from zero replicas and the worker's imports into `COLD_START_RESULTS.md`.
"""
