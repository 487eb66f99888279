"""Chat with MiniGPT4Qwen in the browser: `python webui_demo.py [-c CHECKPOINT]`, then open
http://127.0.0.1:7860.

With no checkpoint it uses the latest one `python train.py` wrote for the tiny default.
Upload one or more images, ask questions (answers stream in), tune generation on the left,
and Restart to clear images and history.  The server listens on 127.0.0.1 only unless
`--host` says otherwise; a public share link is made only with `--share`.  Gradio's usage
analytics and version check are switched off.
"""

import os

# Before gradio is imported: no analytics, no version check, no telemetry.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

import argparse  # noqa: E402
import html  # noqa: E402
import sys  # noqa: E402

from lavis import chat  # noqa: E402
from lavis.common.errors import UserError, report  # noqa: E402
from lavis.common.generation import check_setting  # noqa: E402

TITLE = "MiniGPT4Qwen"
DESCRIPTION = (
    "Upload one or more images, then ask about them; answers appear as they are generated. "
    "New images join the next question. **Restart** clears the images and the conversation."
)
EXAMPLE_PROMPTS = [
    ["What colour is the shape?"],
    ["图中是什么形状？"],
    ["What shape is in the image?"],
    ["这个形状是什么颜色的？"],
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="MiniGPT4Qwen web demo (Gradio).")
    parser.add_argument("-c", "--checkpoint-path", default=None, help="checkpoint (default: the tiny default's latest)")
    parser.add_argument(
        "--model-type", default=None, choices=["qwen7b_chat", "tiny"], help="for checkpoints without a config"
    )
    parser.add_argument("-s", "--seed", type=int, default=42, help="random seed for sampling (default: %(default)s)")
    parser.add_argument("--cpu-only", action="store_true", help="run on the CPU even if a GPU is available")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)"
    )
    parser.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    parser.add_argument("--share", action="store_true", help="also make a public gradio.live link (off by default)")
    return parser.parse_args(argv)


def _new_state():
    return {"conversation": chat.Conversation(), "paths": []}


def _escape(text):
    """Show text literally in the chat (typed `<ImageHere>` or HTML is text, not markup)."""
    return html.escape(text, quote=False)


class WebChat:
    """The handlers behind the page (plain functions of the component values, testable without a browser)."""

    def __init__(self, chat_model, seed=42):
        self.chat_model = chat_model
        self.seed = seed
        self.defaults = chat_model.default_settings()

    def session(self, state, settings=None):
        return chat.ChatSession(self.chat_model, settings=settings, seed=self.seed, conversation=state["conversation"])

    def upload(self, files, state):
        """New images -> (file box cleared, gallery, status message, state)."""
        state = state or _new_state()
        session = self.session(state)
        added, problems = [], []
        for item in files or []:
            path = item if isinstance(item, str) else getattr(item, "path", None) or getattr(item, "name", None)
            name = os.path.basename(str(path))
            try:
                session.add_images([path], labels=[name])
            except chat.ImageError as err:
                problems.append(f"Error: {err}")
            except Exception as err:  # never let a bad file take the page down
                problems.append(f"Error: {name}: cannot use this file ({type(err).__name__})")
            else:
                state["paths"].append(path)
                added.append(name)
        lines = []
        if added:
            lines.append(f"Added {len(added)} image(s): {', '.join(added)}; they go with your next question.")
        lines += problems
        return None, self.gallery(state), "\n\n".join(_escape(line) for line in lines), state

    def add_example_image(self, state):
        path = chat.example_image_path("triangle", "blue")
        return self.upload([path], state)

    @staticmethod
    def gallery(state):
        conversation = state["conversation"]
        return [(path, label) for path, label in zip(state["paths"], conversation.labels)]

    def settings(self, do_sample, num_beams, temperature, top_k, top_p, max_new_tokens):
        """The controls' values as settings, each checked as `:conf` checks it (GenerationSettingError)."""
        settings = chat.GenerationSettings(**{**self.defaults.to_dict()})
        for key, value in (
            ("do_sample", do_sample),
            ("num_beams", num_beams),
            ("temperature", temperature),
            ("top_k", top_k),
            ("top_p", top_p),
            ("max_new_tokens", max_new_tokens),
        ):
            settings.set(key, value)
        return settings

    def submit(self, text, history, state):
        """Show the question at once: -> (text box cleared, chat, question to answer, state)."""
        state = state or _new_state()
        text = (text or "").strip()
        if not text:
            return "", history, "", state
        pending = state["conversation"].pending
        shown = (f"[{pending} image(s)] " if pending else "") + text
        return "", list(history or []) + [{"role": "user", "content": _escape(shown)}], text, state

    def answer(self, question, history, state, do_sample, num_beams, temperature, top_k, top_p, max_new_tokens):
        """Stream the answer into the chat: yields (chat, state)."""
        history = list(history or [])
        state = state or _new_state()
        if not question:
            yield history, state
            return
        try:
            settings = self.settings(do_sample, num_beams, temperature, top_k, top_p, max_new_tokens)
            reply = self.session(state, settings).stream(question)
        except UserError as err:
            history.append({"role": "assistant", "content": _escape(f"Error: {err}")})
            yield history, state
            return
        history.append({"role": "assistant", "content": ""})
        pieces = iter(reply)
        try:
            for piece in pieces:
                history[-1] = {"role": "assistant", "content": history[-1]["content"] + _escape(piece)}
                yield history, state
        except chat.ChatError as err:
            history[-1] = {"role": "assistant", "content": history[-1]["content"] + _escape(f" [error: {err}]")}
        finally:
            pieces.close()  # stops generating if the page went away
        if not history[-1]["content"]:
            history[-1] = {"role": "assistant", "content": _escape("(empty answer)")}
        yield history, state

    @staticmethod
    def restart():
        """-> (chat, gallery, status, file box, text box, state): everything cleared."""
        return [], [], "", None, "", _new_state()


def build_demo(chat_model, seed=42):
    import gradio as gr

    web = WebChat(chat_model, seed)
    defaults = web.defaults
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(f"# {TITLE}\n{DESCRIPTION}")
        state = gr.State(_new_state)
        question = gr.State("")
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(
                    label="Upload images",
                    file_count="multiple",
                    file_types=["image"],
                    type="filepath",
                    elem_id="image-upload",
                )
                example_image = gr.Button("Use an example image", size="sm", elem_id="example-image")
                gallery = gr.Gallery(label="Images in this chat", columns=4, height=180, elem_id="gallery")
                status = gr.Markdown(elem_id="upload-status")
                restart = gr.Button("Restart", variant="secondary", elem_id="restart")
                with gr.Accordion("Generation", open=True):
                    do_sample = gr.Checkbox(
                        value=defaults.do_sample, label="do_sample (sampling; off: greedy or beam search)"
                    )
                    num_beams = gr.Slider(1, 8, value=defaults.num_beams, step=1, label="num_beams")
                    temperature = gr.Slider(0.05, 2.0, value=defaults.temperature, step=0.05, label="temperature")
                    top_k = gr.Slider(0, 100, value=defaults.top_k, step=1, label="top_k (0: off)")
                    top_p = gr.Slider(0.05, 1.0, value=defaults.top_p, step=0.05, label="top_p")
                    max_new_tokens = gr.Slider(
                        1,
                        max(defaults.max_new_tokens, 2048),
                        value=defaults.max_new_tokens,
                        step=1,
                        label="max_new_tokens",
                        elem_id="max-new-tokens",
                    )
            with gr.Column(scale=2):
                chatbot = gr.Chatbot(label=TITLE, height=480, elem_id="chatbot", sanitize_html=True)
                with gr.Row():
                    text = gr.Textbox(
                        show_label=False,
                        placeholder="Ask about the images and press Enter",
                        scale=5,
                        elem_id="question",
                    )
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                gr.Examples(examples=EXAMPLE_PROMPTS, inputs=[text], label="Example prompts")

        controls = [do_sample, num_beams, temperature, top_k, top_p, max_new_tokens]
        files.upload(web.upload, [files, state], [files, gallery, status, state])
        example_image.click(web.add_example_image, [state], [files, gallery, status, state])
        for event in (text.submit, send.click):
            event(web.submit, [text, chatbot, state], [text, chatbot, question, state], queue=False).then(
                web.answer, [question, chatbot, state, *controls], [chatbot, state]
            )
        restart.click(web.restart, None, [chatbot, gallery, status, files, text, state], queue=False)
    demo.queue(default_concurrency_limit=1)
    return demo


def main(argv=None):
    args = parse_args(argv)
    print("[INFO] loading the model...", flush=True)
    try:
        check_setting("seed", args.seed)  # before the model loads
        if not 1 <= args.port <= 65535:
            raise chat.ChatError(f"--port {args.port}: must be an integer in 1..65535")
        chat_model = chat.load_chat_model(
            args.checkpoint_path, args.model_type, device="cpu" if args.cpu_only else None
        )
    except UserError as err:
        return report(err, fold=True)
    print(
        f"[INFO] checkpoint: {chat_model.checkpoint} (model type {chat_model.model_type}, {chat_model.device})",
        flush=True,
    )
    demo = build_demo(chat_model, args.seed)
    try:
        demo.launch(
            server_name=args.host,
            server_port=args.port,
            share=args.share,
            inbrowser=False,
            max_file_size=chat.MAX_IMAGE_BYTES,
            footer_links=[],
            show_error=False,
        )
    except OSError as err:  # gradio's "Cannot find empty port", an address that is not this machine's
        return report(chat.ChatError(f"cannot serve on {args.host}:{args.port}: {err}"), fold=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
