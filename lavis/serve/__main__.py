"""The server's command line, the top of the serving flow: flags -> socket -> model -> uvicorn.

    python -m lavis.serve [--ckpt-path CKPT] [--host 127.0.0.1] [--port 8000] [--api-key KEY]
        [--max-batch-size 8] [--max-queue 64] [--batch-window-ms 10] [--max-images 8]
        [--allow-local-dir DIR] [--device cpu|cuda]

The port is bound before the model loads (a port in use is reported at once, as one line;
`--port 0` takes a free one), then the checkpoint is loaded by the chat layer and uvicorn serves
:func:`~lavis.serve.app.create_app` on that socket.  Once ready it prints one line,
`serving MODEL on http://HOST:PORT`.  Every user error is one `error:` line, exit status 2.
"""

import argparse
import asyncio
import os
import socket
import sys

import uvicorn

from lavis.chat import load_chat_model
from lavis.common.errors import UserError, report
from lavis.serve.app import create_app
from lavis.serve.batching import Batcher
from lavis.serve.parsing import Limits


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _port(text):
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535, got {value}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m lavis.serve", description="Serve a MiniGPT4Qwen checkpoint with OpenAI's chat-completions API."
    )
    parser.add_argument("--ckpt-path", help="checkpoint (default: the tiny default's latest, from `python train.py`)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=_port, default=8000, help="port (0: a free one; default 8000)")
    parser.add_argument("--api-key", help="require `Authorization: Bearer KEY` on /v1 routes")
    parser.add_argument("--max-batch-size", type=_positive, default=8, help="rows generated together (default 8)")
    parser.add_argument("--max-queue", type=_positive, default=64, help="waiting requests before 503 (default 64)")
    parser.add_argument(
        "--batch-window-ms", type=float, default=10.0, help="how long a batch waits for more requests (default 10)"
    )
    parser.add_argument("--max-images", type=_positive, default=8, help="images per request (default 8)")
    parser.add_argument("--allow-local-dir", help="folder whose image files requests may name by path")
    parser.add_argument("--device", help="cpu, cuda, cuda:1... (default: cuda if available)")
    args = parser.parse_args(argv)
    if args.batch_window_ms < 0:
        parser.error(f"--batch-window-ms must be >= 0, got {args.batch_window_ms:g}")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.allow_local_dir is not None and not os.path.isdir(args.allow_local_dir):
            raise UserError(f"--allow-local-dir {args.allow_local_dir}: not a folder")
        try:
            family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
            sock = socket.create_server((args.host, args.port), family=family)
        except OSError as err:
            raise UserError(f"cannot listen on {args.host}:{args.port}: {err.strerror or err}") from None
        print("loading the model...", flush=True)
        chat_model = load_chat_model(args.ckpt_path, device=args.device)
    except KeyboardInterrupt:
        return 130
    except UserError as err:
        return report(err, fold=True)

    model_id = f"minigpt4qwen-{chat_model.model_type}"
    batcher = Batcher(chat_model, args.max_batch_size, args.max_queue, args.batch_window_ms / 1000)
    limits = Limits(args.max_images, args.allow_local_dir)
    app = create_app(chat_model, batcher, model_id, limits, args.api_key)
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    shown = f"[{host}]" if ":" in host else host

    async def announce():  # once uvicorn listens: the line scripts and tests wait for
        while not server.started:
            await asyncio.sleep(0.01)
        print(f"serving {model_id} on http://{shown}:{port}", flush=True)

    async def serve():
        task = asyncio.ensure_future(announce())
        await server.serve(sockets=[sock])
        task.cancel()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
