"""The benchmark tasks' asking and answering (lavis/tasks/benchmark_task.py): SEED-Bench's two
scorings on its released format, with a stand-in model whose option losses are known."""

from types import SimpleNamespace

import pytest
import torch

from lavis.datasets.eval_data.seed_bench import read_seed_bench
from lavis.processors.benchmark_prompts import IMAGE_PREFIX, INSTRUCTIONS
from lavis.tasks.benchmark_task import SEEDBenchTask, benchmark_task_of
from tests.helpers.benchmark_files import seed_files


class OptionLosses:
    """A model that reports `losses` for the option rows it is given, and what it was asked."""

    def __init__(self, losses):
        self.losses, self.encoded, self.samples = losses, [], None

    def parameters(self):
        yield torch.zeros(1)

    def encode_queries(self, images):
        self.encoded.append(images.shape[0])
        return torch.arange(images.shape[0], dtype=torch.float32)[:, None, None].expand(-1, 2, 3)

    def reply_losses(self, samples):
        self.samples = samples
        return torch.tensor(self.losses)


@pytest.fixture
def seed_items(tmp_path):
    items = read_seed_bench(*seed_files(tmp_path))
    assert [item["question_id"] for item in items] == ["101669", "1"]  # the image questions
    return items


def test_likelihood_ranks_each_questions_options_by_their_reply_loss(seed_items):
    task = SEEDBenchTask()  # the default: SEED-Bench's own answer ranking
    asks = task.asks(seed_items)
    assert asks[0]["prompt"] == IMAGE_PREFIX + "How many towels are in the image?"  # no options, no instruction
    model = OptionLosses([0.5, 0.1, 0.9, 0.3, 0.2, 0.2, 0.7, 0.9])
    answers = task.answer(model, {"item": asks, "image": torch.zeros(2, 3, 8, 8)}, max_new_tokens=8, num_beams=1)
    assert [reply for reply, _ in answers] == ["B", "A"]  # the lowest loss; a tie goes to the first option
    assert answers[0][1] == {"option_losses": {"A": 0.5, "B": 0.1, "C": 0.9, "D": 0.3}}
    # each image through the image side once, its features shared by its four option rows
    assert model.encoded == [2]
    assert model.samples["image_features"][:, 0, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    rows = model.samples["conversations"]
    assert [row[1]["value"] for row in rows[:4]] == ["One", "Two", "Three", "Four"]
    assert all(row[0]["value"] == asks[i // 4]["prompt"] for i, row in enumerate(rows))
    assert [task.judge(reply, ask)[1] for (reply, _), ask in zip(answers, asks)] == [False, False]


def test_generate_asks_with_the_options_and_the_letter_instruction(seed_items):
    task = benchmark_task_of("seed_bench", SimpleNamespace(seed_bench_scoring="generate"))
    assert task.scoring == "generate"
    prompt = task.asks(seed_items)[1]["prompt"]
    assert prompt.startswith(IMAGE_PREFIX + "Where is this scene?\nA. A beach\nB. A forest")
    assert prompt.endswith("\n" + INSTRUCTIONS["multiple_choice"]["en"])
    assert task.judge("The answer is C.", task.asks(seed_items)[1]) == ("C", True)
    with pytest.raises(ValueError, match="SEED-Bench scoring 'ppl': choose likelihood or generate"):
        SEEDBenchTask("ppl")
