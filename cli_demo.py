"""Chat with MiniGPT4Qwen in the terminal: `python cli_demo.py [-c CHECKPOINT]`.

With no checkpoint it uses the latest one `python train.py` wrote for the tiny default
(output/instruction_tuning/tiny/<newest job>/checkpoint_<highest epoch>.pth).  For the real
model: `python cli_demo.py -c path/to/checkpoint.pth` with Qwen-7B-Chat and the other
original weights under cache/ (see README).  Type :h for the commands.
"""

import argparse
import os
import shutil
import sys

WELCOME = """\
MiniGPT4Qwen: type a question to chat about your image(s); :h shows the commands.
(MiniGPT4Qwen：输入问题即可对图片进行对话；:h 显示命令帮助。)
This demo is governed by the licence of Qwen; do not use it to produce harmful content.
"""

HELP = """\
Commands:
    :help / :h              Show this help                          显示帮助
    :exit / :quit / :q      Exit (Ctrl-D or Ctrl-C at the prompt)   退出
    :clear / :cl            Clear the screen                        清屏
    :clear-his / :clh       Clear the history, keep the images      清除对话历史（保留图片）
    :history / :his         Show the history                        显示对话历史
    :img                    Show the current image paths            显示当前图片路径
    :img PATH [PATH...]     Use these images instead (new chat)     换成这些图片（开始新对话）
    :seed                   Show the random seed                    显示随机种子
    :seed N                 Set the random seed to N                设置随机种子
    :conf                   Show the generation settings            显示生成配置
    :conf KEY=VALUE ...     Change generation settings              修改生成配置
    :reset-conf             Reset the generation settings           重置生成配置
Ctrl-C while an answer is being written stops that answer.
"""

COMMANDS_LINE = "commands: :help :exit :clear :clear-his :history :img :seed :conf :reset-conf"

IMAGE_PROMPT = "Image path (one per line; :f or an empty line when done) 图片路径（:f 结束）> "


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="MiniGPT4Qwen command-line chat demo.")
    parser.add_argument(
        "-c",
        "--checkpoint-path",
        default=None,
        help="MiniGPT4Qwen checkpoint (default: the tiny default's latest checkpoint from `python train.py`)",
    )
    parser.add_argument(
        "--model-type",
        default=None,
        choices=["qwen7b_chat", "tiny"],
        help="model type for a checkpoint that carries no config (default: the checkpoint's own, else qwen7b_chat)",
    )
    parser.add_argument("-s", "--seed", type=int, default=42, help="random seed (default: %(default)s)")
    parser.add_argument("--cpu-only", action="store_true", help="run on the CPU even if a GPU is available")
    return parser.parse_args(argv)


class Quit(Exception):
    """The person asked to leave (command, Ctrl-C or Ctrl-D at a prompt)."""


def read_line(prompt):
    try:
        return input(prompt)
    except (EOFError, KeyboardInterrupt):
        print()
        raise Quit from None


def clear_screen():
    sys.stdout.write("\033[2J\033[H")
    sys.stdout.flush()


def split_paths(line):
    """A line of image paths: the whole line if it is a file, else whitespace/quote separated."""
    import shlex

    line = line.strip()
    if os.path.exists(os.path.expanduser(line)):
        return [line]
    try:
        return shlex.split(line)
    except ValueError:
        return line.split()


def ask_images(session, chat):
    """Ask for image paths until `:f` / an empty line; bad paths are reported and asked again."""
    session.reset()
    while True:
        try:
            line = read_line(IMAGE_PROMPT).strip()
        except UnicodeDecodeError:
            print("[ERROR] the input is not valid UTF-8")
            continue
        if line in (":q", ":quit", ":exit"):
            raise Quit
        if line in (":f", ""):
            if session.image_labels:
                break
            if line == ":f":
                print("[INFO] no images: chatting with text only")
                break
            print("[ERROR] type an image path (or :f for no image)")
            continue
        for path in split_paths(line):
            try:
                session.add_images([path])
            except chat.ImageError as err:
                print(f"[ERROR] {err}")
                continue
            print(f"[INFO] image {len(session.image_labels)}: {path}")


def print_history(session, chat):
    width = shutil.get_terminal_size((80, 20)).columns
    print(f" History ({len(session.history)}) ".center(width, "="))
    for i, (query, response) in enumerate(session.history):
        print(f"User[{i}]: {chat.render_query(query)}")
        print(f"MiniGPT4Qwen[{i}]: {response}")
    print("=" * width)


def run_command(line, session, chat, defaults):
    """Handle a `:command`; returns False to leave."""
    words = line[1:].split()
    command, args = (words[0], words[1:]) if words else ("", [])
    if command in ("exit", "quit", "q"):
        return False
    if command in ("help", "h"):
        print(HELP)
    elif command in ("clear", "cl"):
        clear_screen()
        print(WELCOME)
    elif command in ("clear-his", "clear-history", "clh"):
        count = session.clear_history()
        print(f"[INFO] {count} turn(s) of history cleared; the images stay and go with the next question")
    elif command in ("history", "his"):
        print_history(session, chat)
    elif command == "img":
        if not args:
            print(f"[INFO] images: {session.image_labels}")
        else:
            paths = split_paths(line[len(":img") :])
            try:
                session.set_images(paths)
            except chat.ImageError as err:
                print(f"[ERROR] {err}; the images are unchanged")
            else:
                print(f"[INFO] images: {session.image_labels}; history cleared, they go with the next question")
    elif command == "seed":
        if not args:
            print(f"[INFO] random seed: {session.seed}")
        else:
            try:
                session.seed = args[0]
            except ValueError as err:
                print(f"[ERROR] {err}; the seed stays {session.seed}")
            else:
                print(f"[INFO] random seed set to {session.seed}")
    elif command == "conf":
        if not args:
            for key, value in session.settings.to_dict().items():
                print(f"    {key} = {value}")
        for assignment in args:
            try:
                key, value = session.settings.assign(assignment)
            except ValueError as err:
                print(f"[ERROR] {err}")
            else:
                print(f"[INFO] {key} = {value}")
    elif command == "reset-conf":
        session.settings = defaults()
        print("[INFO] generation settings reset:")
        for key, value in session.settings.to_dict().items():
            print(f"    {key} = {value}")
    else:
        print(f"[ERROR] unknown command {line.split()[0]!r}; {COMMANDS_LINE} (:h for help)")
    return True


def answer(session, chat, text):
    """Stream the answer to the terminal as it is generated (on this thread: Ctrl-C lands in
    `generate` and stops it; the interrupted turn is not kept)."""
    try:
        reply = session.reply(text)
    except chat.ChatError as err:
        print(f"[ERROR] {err}")
        return
    sys.stdout.write("MiniGPT4Qwen: ")
    sys.stdout.flush()

    def show(piece):
        sys.stdout.write(piece)
        sys.stdout.flush()

    try:
        reply.run(show)
    except KeyboardInterrupt:
        print("\n[INFO] answer interrupted (not kept in the history)")
        return
    except chat.ChatError as err:
        print(f"\n[ERROR] {err}")
        return
    print()


def main(argv=None):
    args = parse_args(argv)
    try:
        print("[INFO] loading the model...", flush=True)
        # imported after that line, inside the try: importing torch takes seconds, and a Ctrl-C
        # during it exits quietly
        from lavis import chat
        from lavis.common.errors import UserError, report
        from lavis.common.generation import check_setting

        check_setting("seed", args.seed)  # before the model loads
        chat_model = chat.load_chat_model(
            args.checkpoint_path, args.model_type, device="cpu" if args.cpu_only else None
        )
    except KeyboardInterrupt:
        print()
        return 130
    except UserError as err:
        return report(err, fold=True)
    print(f"[INFO] checkpoint: {chat_model.checkpoint} (model type {chat_model.model_type}, {chat_model.device})")
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass

    session = chat.ChatSession(chat_model, seed=args.seed)
    try:
        ask_images(session, chat)
        print(WELCOME)
        while True:
            try:
                line = read_line("User> ").strip()
            except UnicodeDecodeError:
                print("[ERROR] the input is not valid UTF-8")
                continue
            if not line:
                print("[ERROR] the question is empty")
                continue
            if line.startswith(":"):
                if not run_command(line, session, chat, chat_model.default_settings):
                    break
                continue
            answer(session, chat, line)
    except Quit:
        pass
    print("Bye.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
