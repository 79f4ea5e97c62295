#!/usr/bin/env python3
"""The local AWS emulator: moto's server with the project's extensions, in the foreground.

Started by tests/emulator/run (which provides the pinned venv); see `run --help`.

Owns: argument parsing, loading the extensions (lakemesh_moto) before the first request, binding
the loopback address, the "ready" line, and stopping cleanly on SIGTERM/SIGINT or, with
--watch-parent, when the process that started it goes away. Does not own any AWS behaviour:
that is moto's, or an extension's.

Output contract (what tests/emulator/test_emulator.py and lakemesh-shared's testbed read):
- stdout: exactly one line once the socket listens:
      lakemesh-emulator: ready http://127.0.0.1:PORT moto 5.2.5 extensions: NAME,NAME|none
  (PORT is the real port, also when --port 0 let the kernel choose one);
- stderr: moto's request log (unless --quiet), errors, and a last "stopped" line;
- exit status: 0 after a clean stop, 1 when it cannot start (port taken, bad extension), 2 on
  bad arguments.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import stat
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import lakemesh_moto  # noqa: E402  (needs the sys.path entry above)

PROG = "tests/emulator/run"


def describe_extensions() -> str:
    try:
        lakemesh_moto._import_builtin()
    except Exception as e:  # --help must still print
        return f"  (cannot list extensions: {type(e).__name__}: {e})"
    exts = lakemesh_moto.registered()
    if not exts:
        return "  none"
    return "\n".join(f"  {e.name} ({e.service}): {e.summary}" for e in exts)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run the local AWS emulator (moto server, pinned, with lakemesh's extensions) in the\n"
            "foreground on a loopback address. Prints one 'ready' line on stdout once it listens;\n"
            "stops on SIGTERM or Ctrl-C. Point clients at it with endpoint_url = http://127.0.0.1:PORT\n"
            "(or AWS_ENDPOINT_URL) and any static credentials, e.g. AWS_ACCESS_KEY_ID=testing.\n\n"
            "Control endpoints: moto's /moto-api/ (reset, reset-auth, state-manager, static results)\n"
            "and GET /_lakemesh/health (moto version and the extensions loaded)."
        ),
        epilog="extensions:\n" + describe_extensions(),
    )
    ap.add_argument("--port", type=int, required=True, metavar="N",
                    help="TCP port to listen on; 0 lets the kernel pick a free one (reported in the ready line)")
    ap.add_argument("--host", default="127.0.0.1",
                    help="loopback address to bind (default 127.0.0.1; other addresses are refused)")
    ap.add_argument("--watch-parent", action="store_true",
                    help="also stop when the parent process exits, or when stdin (if a pipe) reaches end of file; "
                         "test harnesses use it so no emulator outlives them")
    ap.add_argument("--quiet", action="store_true", help="do not log each request on stderr")
    ap.add_argument("--extension-path", action="append", default=[], type=Path, metavar="DIR",
                    help="also load every *.py of DIR as an extension (for tests of the extension plumbing)")
    args = ap.parse_args(argv)
    if not 0 <= args.port <= 65535:
        ap.error(f"--port {args.port}: not a TCP port (0-65535)")
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        ap.error(f"--host {args.host}: only loopback addresses are allowed (127.0.0.0/8, ::1, localhost)")
    return args


def watch_parent(stop: threading.Event, reasons: list[str]) -> None:
    """Set `stop` when our parent goes away (its pid changes) or stdin, if a pipe, hits EOF."""
    parent = os.getppid()

    def poll_parent() -> None:
        while not stop.wait(0.5):
            if os.getppid() != parent:
                reasons.append(f"parent process {parent} exited")
                stop.set()

    threading.Thread(target=poll_parent, name="watch-parent", daemon=True).start()
    try:
        is_pipe = stat.S_ISFIFO(os.fstat(0).st_mode)
    except OSError:
        is_pipe = False
    if is_pipe:
        def read_stdin() -> None:
            try:
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            reasons.append("stdin closed")
            stop.set()

        threading.Thread(target=read_stdin, name="watch-stdin", daemon=True).start()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    import logging

    import moto
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    if args.quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        exts = lakemesh_moto.install_all(args.extension_path)
    except lakemesh_moto.ExtensionError as e:
        print(f"lakemesh-emulator: {e}", file=sys.stderr)
        return 1
    app = lakemesh_moto.control_middleware(DomainDispatcherApplication(create_backend_app))
    try:
        server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    except (OSError, SystemExit) as e:
        # werkzeug prints its own hint and raises SystemExit(1) when the port is taken.
        why = e if isinstance(e, OSError) else "address in use or not available"
        print(f"lakemesh-emulator: cannot listen on {args.host}:{args.port}: {why}", file=sys.stderr)
        return 1
    port = server.server_port
    os.environ["MOTO_PORT"] = str(port)

    stop = threading.Event()
    reasons: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        reasons.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.watch_parent:
        watch_parent(stop, reasons)

    serving = threading.Thread(target=server.serve_forever, name="serve", daemon=True)
    serving.start()
    names = ",".join(e.name for e in exts) or "none"
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"lakemesh-emulator: ready http://{host}:{port} moto {moto.__version__} extensions: {names}", flush=True)

    # A timed wait so the main thread returns to the interpreter and runs signal handlers promptly.
    while not stop.wait(0.2):
        if not serving.is_alive():
            reasons.append("server thread died")
            break
    server.shutdown()
    server.server_close()
    print(f"lakemesh-emulator: stopped ({', '.join(reasons) or 'no reason'})", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
