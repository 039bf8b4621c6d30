"""Progress lines appear on a terminal only, one per notebook start and finish."""

from __future__ import annotations

import io

from tenancy_diag.running.progress import LineProgress, NullProgress, for_stream


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_lines_on_a_terminal_and_silence_in_a_pipe():
    assert isinstance(for_stream(io.StringIO(), 2), NullProgress)
    terminal = _Terminal()
    progress = for_stream(terminal, 2)
    assert isinstance(progress, LineProgress)
    progress.started("api_health")
    progress.finished("api_health", "failing", 9.84)
    first, second = terminal.getvalue().splitlines()
    assert first.endswith("api_health                 started")
    assert "api_health" in second and "failing" in second and "9.8 s" in second
    assert second.endswith("(1/2 done)")


def test_the_public_surface_is_exported():
    import tenancy_diag.running as running

    assert sorted(running.__all__) == sorted(set(running.__all__))
    for name in running.__all__:
        assert getattr(running, name) is not None, name
