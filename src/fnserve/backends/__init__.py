"""Backends place replica processes: `local` (subprocesses on this machine); `ray` comes later."""
