"""The interactive prompt loop around a `Session` (prompt_toolkit): editing, highlighting, completion, history."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from rich.text import Text

from stream_dsl.repl.input import is_complete
from stream_dsl.repl.session import Session

__all__ = ["run_repl", "prompt_session", "no_echo", "history_path", "HISTORY_ENV", "PROMPT"]

HISTORY_ENV = "STREAM_DSL_HISTORY"
PROMPT = "stream-dsl> "
CONTINUATION = "...> "


def history_path() -> str:
    """Where the history is kept: $STREAM_DSL_HISTORY, else ~/.stream_dsl_history."""
    return os.environ.get(HISTORY_ENV) or os.path.join(os.path.expanduser("~"), ".stream_dsl_history")


def _history(path: str | None) -> Any:
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    from stream_dsl.connectors.file_writes import make_private

    path = path or history_path()
    try:
        make_private(path)  # 0600: what was typed may hold data or passwords
    except OSError:
        return InMemoryHistory()
    return FileHistory(path)


@contextmanager
def no_echo(stream: Any) -> Iterator[None]:
    """Keys typed while a query is shown are not echoed over its live table; Ctrl-C still interrupts."""
    try:
        import termios

        fd = stream.fileno()
        saved = termios.tcgetattr(fd)
    except (ImportError, AttributeError, OSError, ValueError):
        yield
        return
    quiet = list(saved)
    quiet[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


def _key_bindings() -> Any:
    from prompt_toolkit.key_binding import KeyBindings

    bindings = KeyBindings()

    @bindings.add("enter")
    def _enter(event: Any) -> None:
        """Run the input when it is complete (ends with ';', or is a meta command); else a new line."""
        buffer = event.current_buffer
        state = buffer.complete_state
        if state is not None and state.current_completion is not None:
            buffer.apply_completion(state.current_completion)
            return
        if is_complete(buffer.text):
            buffer.validate_and_handle()
        else:
            buffer.insert_text("\n")

    return bindings


def _toolbar(session: Session) -> Callable[[], str]:
    def text() -> str:
        c = session.ctx.config
        return (
            f" executor {c.executor} · workers {c.workers} · group size {c.group_size} · "
            f"batch {c.batch_interval_ms}ms · optimize {'on' if c.optimize else 'off'} · "
            f"format {session.fmt} · timing {'on' if session.timing else 'off'}    \\help · Ctrl-D quits"
        )

    return text


def prompt_session(
    session: Session, *, input: Any = None, output: Any = None, history: str | None = None, history_object: Any = None
) -> Any:
    """The prompt_toolkit PromptSession of the REPL (pass `input`/`output` to drive it without a terminal)."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.lexers import PygmentsLexer

    from stream_dsl.repl.complete import DSLCompleter
    from stream_dsl.repl.lexer import StreamDSLLexer

    width = len(PROMPT)
    return PromptSession(
        message=PROMPT,
        multiline=True,
        prompt_continuation=lambda w, line, wrap: CONTINUATION.rjust(width),
        lexer=PygmentsLexer(StreamDSLLexer),
        completer=DSLCompleter(lambda: session.ctx.catalog),
        complete_while_typing=True,
        history=history_object if history_object is not None else _history(history),
        key_bindings=_key_bindings(),
        bottom_toolbar=_toolbar(session) if output is None else None,
        input=input,
        output=output,
    )


def run_repl(
    session: Session | None = None,
    *,
    input: Any = None,
    output: Any = None,
    history: str | None = None,
    history_object: Any = None,
    banner: bool = True,
    prompt: Any = None,
) -> int:
    """The interactive loop: read an input, run it, repeat until `\\q` or Ctrl-D. Returns 0.

    Ctrl-C while typing drops the input; while a query runs, it stops the
    query. `input`/`output` default to the terminal; tests pass
    prompt_toolkit's pipe input and DummyOutput (or a `prompt` made by
    `prompt_session`, to look at its buffer while it runs).
    """
    session = session or Session()
    if prompt is None:
        prompt = prompt_session(session, input=input, output=output, history=history, history_object=history_object)
    if input is None and session.input_guard is None:
        session.input_guard = lambda: no_echo(sys.stdin)
    if banner:
        from stream_dsl.cli.main import _version

        session.console.print(
            Text(f"stream-dsl {_version()} — statements end with ';', \\help for help, Ctrl-D to quit", style="dim")
        )
    while True:
        try:
            if not session.execute(prompt.prompt()):
                break
        except KeyboardInterrupt:  # Ctrl-C at the prompt: drop the input, ask again
            continue
        except EOFError:  # Ctrl-D on an empty line
            break
    session.stop_background()
    return 0
