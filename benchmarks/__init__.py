"""Load tests for fnserve: the harness that `make bench` runs (`benchmarks/run.py`) and its parts.

`targets.py` says how to start each server under test, `scenarios.py` what request to load it with,
`wrk.py` drives the load generator, `procs.py` handles processes and memory, `suite.py` runs them
side by side, and `report.py` renders the tables and `RESULTS.md`. `jobs.py` measures the job queue
(jobs/s submitted and completed, submit → COMPLETED latency) into `JOBS_RESULTS.md`.
`cold_start.py` times upload → ACTIVE, a call from zero replicas and the worker's imports into `COLD_START_RESULTS.md`.
"""
