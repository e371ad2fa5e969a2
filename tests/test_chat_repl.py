"""`lmforge chat` (serve/chat_repl.py): the multi-turn session, its commands and front ends.

The model is a random tiny LLaMA (weights drawn with a large spread, so that every
earlier token visibly moves the greedy answer) with a byte-level BPE trained on
world dialogues (`data/world/dialogues.py`); answers are noise, but exact: a
scripted session through a pipe gives the answers the session gives in-process.
One subprocess run; everything else in this process.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_error, run_lmforge, run_lmforge_inprocess
from test_data_helpers import make_bpe_tokenizer

from lmforge.common import LmforgeError
from lmforge.data.world.dialogues import KINDS, SYSTEM_PROMPT, make_dialogue
from lmforge.data.world.entities import make_world
from lmforge.inference.sampling import SamplingConfig
from lmforge.runs import load_run
from lmforge.serve.chat_repl import (
    one_line,
    parse_command,
    printable,
    run_command,
    run_lines,
    run_terminal,
)
from lmforge.serve.chat_session import ChatSession
from lmforge.tokenizers.chat import fit_to_context, generation_prompt

GREEDY = SamplingConfig(max_new_tokens=8, temperature=0.0)
FLAGS = ["--temperature", "0", "--max-new-tokens", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def world():
    return make_world(random.Random(0), 8, 4, 2)


@pytest.fixture(scope="module")
def dialogue(world) -> dict:
    """A world dialogue of three user turns whose last asks back what the first said."""
    return make_dialogue(random.Random(1), world, "user_name", 2)


def user_turns(record: dict) -> list[str]:
    return [m["content"] for m in record["messages"] if m["role"] == "user"]


def write_run(root: Path, tok, *, block_size: int, stage: str = "sft", seed: int = 0) -> Path:
    """root: a run folder holding a random tiny LLaMA of context `block_size` at step 0."""
    from lmforge.models import build_model, get_preset, save_model
    from lmforge.runs.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    _, cfg = get_preset("llama-tiny")
    cfg.vocab_size, cfg.block_size = tok.vocab_size, block_size
    model = build_model("llama", cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # a wide spread: the answer depends on the whole history
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    tok.save(root / "tokenizer")
    save_checkpoint(
        root, 0, write_weights=lambda p: save_model(model, p), optimizer_state={},
        trainer_state={"stage": stage, "tokenizer_hash": tok.hash},
    )  # fmt: skip
    return root


@pytest.fixture(scope="module")
def tok(world, tmp_path_factory):
    records = [make_dialogue(random.Random(i), world, KINDS[i % 6], 2) for i in range(30)]
    docs = [m["content"] for r in records for m in r["messages"]]
    return make_bpe_tokenizer(tmp_path_factory.mktemp("chat_tok"), 400, docs)


@pytest.fixture(scope="module")
def run_dir(tok, tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("chat_run") / "run", tok, block_size=128)


@pytest.fixture(scope="module")
def small_run(tok, tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("chat_small") / "run", tok, block_size=48, seed=1)


def session_of(run: Path, params: SamplingConfig = GREEDY, **kw) -> ChatSession:
    opened = load_run(run, need="decoder")
    return ChatSession(opened.model, opened.tokenizer, params, **kw)


def lines(*texts: str) -> list[tuple[str, str]]:
    return [(f"stdin:{n}", t) for n, t in enumerate(texts, start=1)]


# --- the scripted session through a pipe -----------------------------------------------


def test_a_piped_conversation_keeps_its_history_in_the_context(run_dir, dialogue, tmp_path):
    first, second, third = user_turns(dialogue)
    other = first.replace(dialogue["answer"], "Boris")
    assert other != first
    saved = tmp_path / "b.jsonl"
    script = [first, second, third, "/reset", other, second, third,
              "/params temperature=-1", "/params", f"/save {saved}", "/quit", "never read"]  # fmt: skip
    r = run_lmforge("chat", "--run", run_dir, "--system", SYSTEM_PROMPT, *FLAGS,
                    input="\n".join(script) + "\n", timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    answers = r.stdout.split("\n")
    assert answers[-1] == "" and len(answers) == 7, r.stdout  # one line per message, no banner
    answers = answers[:-1]
    # The third answer changes with the first message: the history is in the context.
    assert answers[2] != answers[5]
    # The bad value is one clear line naming the setting; the session went on.
    assert "stdin:8: error: /params temperature: must be >= 0.0" in r.stderr, r.stderr
    assert "temperature=0.0" in r.stderr and "max_tokens=8" in r.stderr
    assert f"saved 7 messages to {saved}" in r.stderr

    # In this process the same turns give the same answers, and turn 3's prompt is the
    # generation prompt of the whole history.
    session = session_of(run_dir, system=SYSTEM_PROMPT)
    for n, (user, expected) in enumerate(zip([other, second, third], answers[3:])):
        history = session.messages + [{"role": "user", "content": user}]
        text, info = session.reply(user)
        assert one_line(text) == expected
        assert info.prompt_ids == generation_prompt(session.tok, history)
        assert info.dropped == 0 and info.seed == n
    # /save wrote the conversation as it stood, and /load continues it exactly.
    record = json.loads(saved.read_text(encoding="utf-8"))
    assert saved.read_text(encoding="utf-8").count("\n") == 1
    assert record == {"messages": session.messages}
    loaded = session_of(run_dir)
    assert run_command(loaded, parse_command(f"/load {saved}")).output.startswith("loaded 7")
    assert loaded.messages == session.messages and loaded.system == SYSTEM_PROMPT
    assert loaded.reply("And then?")[0] == session.reply("And then?")[0]


# --- the context ------------------------------------------------------------------------


def test_old_turns_are_dropped_to_fit_the_context_and_the_system_message_stays(small_run, world):
    session = session_of(small_run, system="Be brief.")
    assert session.context == 48 and session.answer_room == 8
    messages = user_turns(make_dialogue(random.Random(5), world, "running_total", 3))
    out, err = io.StringIO(), io.StringIO()
    drops = []
    for user in messages * 2:
        expected = fit_to_context(
            session.tok, session.messages + [{"role": "user", "content": user}],
            max_len=48 - 8, add_generation_prompt=True,
        )  # fmt: skip
        before = len(session.turns)
        _, info = session.reply(user, on_notice=lambda m: err.write(m + "\n"))
        assert info.prompt_ids == expected.chat.ids  # the kept ids are fit_to_context's
        assert len(info.prompt_ids) <= 40 and info.dropped == expected.dropped
        assert info.prompt_ids[0] == session.tok.special_id("system")  # the system is kept
        assert len(session.turns) == before - info.dropped + 2  # dropped for good
        drops.append(info.dropped)
    assert sum(drops) > 0 and session.system == "Be brief."
    n = next(d for d in drops if d)
    assert f"dropped {n} oldest message{'s' if n > 1 else ''} to fit the context of 48 tokens" in (
        err.getvalue()
    )

    # Through the line front end the notice goes to stderr, the answers stay one per line.
    fresh = session_of(small_run, system="Be brief.")
    run_lines(fresh, lines(*messages * 2), out, err := io.StringIO())
    assert len(out.getvalue().split("\n")) == len(messages) * 2 + 1
    assert "oldest message" in err.getvalue() and "oldest" not in out.getvalue()


def test_a_message_too_long_for_the_context_is_refused_and_nothing_changes(small_run):
    session = session_of(small_run)
    session.reply("Hi! My name is Laura.")
    before = session.messages
    with pytest.raises(LmforgeError, match="shorten the message"):
        session.reply("word " * 200)
    assert session.messages == before and session.turn == 1
    out, err = io.StringIO(), io.StringIO()
    run_lines(session, lines("word " * 200, "Hello?"), out, err)
    assert out.getvalue().split("\n")[0] == ""  # an empty answer line keeps the lines in step
    assert err.getvalue().startswith("stdin:1: error: the message is ")
    assert len(session.turns) == 4


def test_a_system_message_too_long_to_sit_beside_a_turn_sits_out_only_that_turn(small_run):
    long_system = "You are a helpful assistant. " * 5
    session = session_of(small_run, system=long_system)
    assert len(generation_prompt(session.tok, session.messages)) > 30
    notices: list[str] = []
    _, info = session.reply("Do you know where Lucy lives?", on_notice=notices.append)
    assert info.system_left_out and info.dropped == 0
    assert info.prompt_ids[0] == session.tok.special_id("user")
    assert notices == ["the system message does not fit beside this message in the context "
                       "of 48 tokens: left out of this answer"]  # fmt: skip
    assert session.system == long_system and session.messages[0]["role"] == "system"


# --- commands ----------------------------------------------------------------------------


def command(session: ChatSession, line: str) -> str:
    cmd = parse_command(line)
    assert cmd is not None, line
    return run_command(session, cmd).output


def test_reset_system_and_params(run_dir):
    sampled = SamplingConfig(max_new_tokens=6, temperature=0.7, top_p=0.9, seed=5)
    session = session_of(run_dir, sampled, system="Be brief.")
    first, info = session.reply("Hello!")
    assert info.seed == 5
    assert session.reply("Again?")[1].seed == 6  # seed + turn index
    assert command(session, "/reset") == "conversation cleared (the system message stays)"
    assert session.messages == [{"role": "system", "content": "Be brief."}]
    again, info = session.reply("Hello!")
    assert (again, info.seed) == (first, 5)  # a reset session samples what a fresh one does

    assert command(session, "/system") == "system message: Be brief."
    command(session, "/system You are a pirate.")
    assert session.messages[0] == {"role": "system", "content": "You are a pirate."}
    assert len(session.messages) == 3  # the history stays
    command(session, "/system --clear")
    assert session.system is None and session.messages[0]["role"] == "user"

    shown = command(session, "/params temperature=0.5 top_p=0.8 max_tokens=5 seed=3 top_k=7")
    p = session.params
    assert (p.temperature, p.top_p, p.max_new_tokens, p.seed, p.top_k) == (0.5, 0.8, 5, 3, 7)
    assert "max_tokens=5" in shown and "seed=3" in shown
    assert session.reply("Hi?")[1].tokens.__len__() <= 5
    for bad, needle in (
        ("temperature=-1", "temperature: must be >= 0.0"),
        ("top_p=2", "top_p: must be in (0, 1]"),
        ("max_tokens=lots", "max_tokens: expected int"),
        ("n=2", "n: not a setting"),
        ("temperature", "'temperature': expected KEY=VALUE"),
    ):
        with pytest.raises(LmforgeError, match="the settings are") as e:
            command(session, f"/params {bad}")
        assert needle in str(e.value), (bad, str(e.value))
    assert session.params == p  # every bad line left the settings as they were
    command(session, "/params seed=none")
    assert session.params.seed is None and session.reply("Hi?")[1].seed is None

    with pytest.raises(LmforgeError, match="unknown command /frobnicate; /help"):
        command(session, "/frobnicate")
    assert "/save FILE" in command(session, "/help")
    assert run_command(session, parse_command("/quit")).quit
    assert parse_command("//etc is a path") is None  # // sends a message starting with /


def test_save_and_load_refuse_what_they_cannot_do(run_dir, tmp_path):
    session = session_of(run_dir)
    with pytest.raises(LmforgeError, match="nothing to save yet"):
        command(session, f"/save {tmp_path / 'x.jsonl'}")
    session.reply("Hello!")
    path = tmp_path / "my chat.jsonl"
    assert "saved 2 messages" in command(session, f'/save "{path}"')
    with pytest.raises(LmforgeError, match="exists; add --force"):
        command(session, f'/save "{path}"')
    command(session, f'/save "{path}" --force')

    two = tmp_path / "two.jsonl"
    two.write_text(path.read_text() * 2)
    with pytest.raises(LmforgeError, match="holds 2 conversations"):
        command(session, f"/load {two}")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "robot", "content": "hi"}]}) + "\n")
    with pytest.raises(LmforgeError, match=f"{bad}:1: .*unknown role 'robot'"):
        command(session, f"/load {bad}")
    ends_with_user = tmp_path / "u.jsonl"
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"}]  # fmt: skip
    ends_with_user.write_text(json.dumps({"messages": msgs}) + "\n")
    with pytest.raises(LmforgeError, match="ends with a user message"):
        command(session, f"/load {ends_with_user}")
    assert len(session.messages) == 2  # nothing changed

    # In the line front end a failed command is one line on stderr and the session goes on.
    out, err = io.StringIO(), io.StringIO()
    run_lines(session, lines(f"/load {two}", "Still there?"), out, err)
    assert err.getvalue().startswith(f"stdin:1: error: {two}: holds 2 conversations")
    assert out.getvalue().count("\n") == 1 and len(session.messages) == 4

    # --load FILE starts the verb from a saved conversation.
    from lmforge.serve.chat_repl import chat_run

    out, err = io.StringIO(), io.StringIO()
    chat_run(run_dir, GREEDY, load=path, stdin=io.StringIO("And then?\n"), out=out, err=err)
    assert err.getvalue() == f"loaded 2 messages from {path}\n"
    loaded = session_of(run_dir)
    loaded.load(path)
    assert out.getvalue() == one_line(loaded.reply("And then?")[0]) + "\n"


def test_stop_strings_cut_the_answer_before_them(run_dir):
    answer = session_of(run_dir).reply("Hello!")[0]
    stop = answer[3:5]
    cut = answer[: answer.find(stop)]
    pieces: list[str] = []
    session = session_of(run_dir, SamplingConfig(max_new_tokens=8, temperature=0.0,
                                                  stop_strings=[stop]))  # fmt: skip
    text, info = session.reply("Hello!", pieces.append)
    assert text == cut == "".join(pieces) and info.finish_reason == "stop"
    assert session.messages[-1]["content"] == cut


# --- Ctrl-C ----------------------------------------------------------------------------


def test_ctrl_c_mid_answer_closes_the_stream_and_keeps_the_partial_answer(run_dir):
    session = session_of(run_dir, SamplingConfig(max_new_tokens=30, temperature=0.0))
    forwards = []
    session.model.register_forward_hook(lambda *a: forwards.append(1))
    pieces: list[str] = []

    def on_delta(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 3:
            raise KeyboardInterrupt

    text, info = session.reply("Hello!", on_delta)
    assert info.interrupted and text == "".join(pieces)
    # No forward ran after the interrupt: one per token taken (the prefill gave the first).
    assert len(forwards) == len(info.tokens) < 30
    assert session.messages[-1] == {"role": "assistant", "content": text}
    # The session goes on, with the partial answer in the history.
    history = session.messages + [{"role": "user", "content": "And?"}]
    assert session.reply("And?")[1].prompt_ids == generation_prompt(session.tok, history)


class _CtrlCOut(io.StringIO):
    """A terminal whose user presses Ctrl-C while the `at`-th answer piece is written."""

    def __init__(self, at: int):
        super().__init__()
        self.at, self.pieces = at, 0

    def write(self, s: str) -> int:
        if s and not s.endswith("\n") and not s.startswith(("/", "(")):
            self.pieces += 1
            if self.pieces == self.at:
                super().write(s)
                raise KeyboardInterrupt
        return super().write(s)


def test_the_terminal_front_end_survives_ctrl_c(run_dir):
    session = session_of(run_dir)
    typed = iter(["Hello!", KeyboardInterrupt, "/system Be kind.", "Again?",
                  KeyboardInterrupt, KeyboardInterrupt, "never read"])  # fmt: skip

    def read(prompt: str) -> str:
        item = next(typed)
        if item is KeyboardInterrupt:
            raise KeyboardInterrupt
        return item

    out, err = _CtrlCOut(at=2), io.StringIO()
    assert run_terminal(session, out, err, read=read, banner="chatting") == 0
    shown = out.getvalue()
    assert shown.startswith("chatting\n/help for commands")
    assert " [interrupted]\n" in shown  # the first answer, stopped at its second piece
    assert shown.count("(press Ctrl-C again or type /quit to leave)") == 2
    assert "system message set" in shown
    roles = [m["role"] for m in session.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant"]
    partial = session.messages[2]["content"]  # kept as shown, marked in the output only
    assert partial and printable(partial) + " [interrupted]\n" in shown
    assert shown.endswith(printable(session.messages[4]["content"]) + "\n\n(press Ctrl-C again or type "
                          "/quit to leave)\n\n")  # fmt: skip
    assert next(typed) == "never read"  # two Ctrl-C in a row at the prompt left


# --- refusals ----------------------------------------------------------------------------


def test_a_run_without_chat_tokens_is_refused_with_what_to_do(tmp_path):
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    from lmforge.tokenizers import Tokenizer

    engine = HFTokenizer(models.BPE())
    engine.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    engine.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    engine.train_from_iterator(["the cat sat on the mat", "hello world"] * 10, trainer)
    tok = Tokenizer(engine, "hf", {"special_tokens": {"eos": "<|endoftext|>"}})
    run = write_run(tmp_path / "pretrained", tok, block_size=32, stage="pretrain")
    r = run_lmforge_inprocess("chat", "--run", run)
    assert_clean_error(r, str(run), "no chat role tokens", "lmforge sft", "lmforge sample")


def test_help_shows_the_chat_defaults_and_no_n(capsys):
    from lmforge.cli.main import main

    with pytest.raises(SystemExit):
        main(["chat", "--help"])
    text = capsys.readouterr().out
    assert "(default: 0.7)" in text and "(default: 0.9)" in text and "(default: 256)" in text
    assert "--n " not in text and "--num-samples" not in text and "--system" in text
