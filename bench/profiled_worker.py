"""`waiver worker` under pyinstrument, profiled phase by phase on request.

Started by bench/run.py --profile instead of `python -m streams.cli worker`, with
BENCH_PROFILE_DIR set. Each SIGRTMIN+3 toggles the profiler: the first starts it for
the phase named in BENCH_PROFILE_DIR/.phase, the next stops it and writes
profile-<phase>.html, profile-<phase>.txt, profile-<phase>-top.txt (functions by own
time and by total time) and profile-<phase>.pyisession, then touches .done-<phase>.

Only the main thread is sampled (the event loop: agents, rules, producer); Faust runs
its aiokafka consumer in a thread of its own, whose CPU run.py reports separately.
(SIGUSR1/SIGUSR2 are taken by the app and by mode's worker.)
"""

import os
import signal
import sys
from pathlib import Path
from typing import Any

from pyinstrument import Profiler

TOGGLE = signal.SIGRTMIN + 3  # type: ignore[attr-defined]


def flat(session: Any, limit: int = 40) -> str:
    """Functions by own (self) time and by total time, as shares of the profiled time."""
    root = session.root_frame()
    if root is None:
        return "no samples\n"
    total = root.time or 1e-9
    own: dict[tuple[str, str, int], float] = {}
    incl: dict[tuple[str, str, int], float] = {}

    def walk(frame: Any, ancestors: set[tuple[str, str, int]]) -> None:
        if frame.is_synthetic:  # [self], [await]: already in the parent's own time
            return
        ident = (frame.function or "?", frame.file_path_short or "", frame.line_no or 0)
        own[ident] = own.get(ident, 0.0) + frame.total_self_time
        if ident not in ancestors:  # count recursion once
            incl[ident] = incl.get(ident, 0.0) + frame.time
        for child in frame.children:
            walk(child, ancestors | {ident})

    walk(root, set())

    def table(title: str, values: dict[tuple[str, str, int], float]) -> list[str]:
        lines = [title, f"{'share':>7}  {'seconds':>8}  function (file:line)"]
        for (function, path, line), t in sorted(values.items(), key=lambda kv: -kv[1])[:limit]:
            lines.append(f"{100 * t / total:6.1f}%  {t:8.2f}  {function} ({path}:{line})")
        return lines

    lines = [f"profiled wall time {total:.2f}s (main thread)", ""]
    lines += [*table("by own time", own), "", *table("by total time", incl)]
    return "\n".join(lines) + "\n"


def main() -> None:
    out = Path(os.environ["BENCH_PROFILE_DIR"])
    state: dict[str, Any] = {"profiler": None, "phase": None}

    def toggle(signum: int, frame: Any) -> None:
        profiler = state["profiler"]
        if profiler is None:
            phase = (out / ".phase").read_text().strip()
            profiler = Profiler(interval=0.001, async_mode="disabled")
            profiler.start()
            state.update(profiler=profiler, phase=phase)
            (out / f".started-{phase}").touch()
            return
        profiler.stop()
        phase = state["phase"]
        state.update(profiler=None, phase=None)
        session = profiler.last_session
        (out / f"profile-{phase}.html").write_text(profiler.output_html(), encoding="utf-8")
        (out / f"profile-{phase}.txt").write_text(
            profiler.output_text(unicode=True, color=False, show_all=False), encoding="utf-8")
        (out / f"profile-{phase}-top.txt").write_text(flat(session), encoding="utf-8")
        session.save(str(out / f"profile-{phase}.pyisession"))
        (out / f".done-{phase}").touch()

    signal.signal(TOGGLE, toggle)
    from streams.cli import main as cli_main

    sys.exit(cli_main(["worker"]))


if __name__ == "__main__":
    main()
