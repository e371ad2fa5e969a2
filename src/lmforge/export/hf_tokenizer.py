"""Tokenizer folders between lmforge and Hugging Face ``transformers``.

Both sides store the pipeline as the same ``tokenizer.json`` (the ``tokenizers``
library's format), so conversion is about the special tokens: lmforge records
the role -> token mapping in ``lmforge.json`` (``special_tokens``), transformers
in ``tokenizer_config.json`` / ``special_tokens_map.json`` (``bos_token``, ...).
A tokenizer with chat role tokens also gets lmforge's ``chat_template``
(`lmforge.tokenizers.chat.jinja_chat_template`), so ``apply_chat_template``
renders conversations exactly as lmforge's SFT saw them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..common import LmforgeError, atomic_write_text
from ..tokenizers.base import TOKENIZER_FILE, Tokenizer
from ..tokenizers.chat import CHAT_TOKENS, has_chat_tokens, jinja_chat_template

# lmforge roles that transformers knows by name, and the chat roles that go to
# additional_special_tokens.
HF_ROLES = ("bos", "eos", "pad", "unk")
EXTRA_ROLES = ("system", "user", "assistant", "end", "mask")


def special_tokens(tok: Tokenizer) -> dict[str, str]:
    """{role: token string} for the roles this tokenizer actually has."""
    out = {}
    for role in (*HF_ROLES, *EXTRA_ROLES):
        i = tok.special_id(role)
        if i is not None:
            out[role] = tok.id_to_token(i)
    return out


def _engine_with_special_roles(tok: Tokenizer, roles: dict[str, str]) -> Any:
    """`tok`'s engine with every role token registered as a special added token.

    Hugging Face splits special added tokens out of the text before normalizing
    and pre-tokenizing it, which the chat template needs (``<|user|>`` must be one
    id, not BPE pieces). lmforge-trained tokenizers and `add_special_tokens`
    already register them; an imported tokenizer may hold one only as a vocabulary
    entry. Ids never change (a string already in the vocabulary keeps its id).
    """
    from tokenizers import AddedToken
    from tokenizers import Tokenizer as HFTokenizer

    engine = tok.engine
    special = {t.content for t in engine.get_added_tokens_decoder().values() if t.special}
    missing = [t for t in dict.fromkeys(roles.values()) if t not in special]
    if not missing:
        return engine
    copy = HFTokenizer.from_str(engine.to_str())
    copy.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in missing])
    moved = [t for t in missing if copy.token_to_id(t) != engine.token_to_id(t)]
    if moved:  # a bug, not bad input: the mapping only names tokens the vocabulary has
        raise RuntimeError(f"registering {moved} as special tokens changed their ids")
    return copy


def write_hf_tokenizer(tok: Tokenizer, folder: str | Path, model_max_length: int) -> dict[str, int]:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json into `folder`.

    Role tokens are written as special added tokens; a tokenizer with all chat
    role tokens gets ``chat_template`` in tokenizer_config.json (one without them
    gets none: it cannot render a chat). Returns {role: id} of bos/eos/pad/unk for
    the model's config files.
    """
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    roles = special_tokens(tok)
    named = {f"{r}_token": roles[r] for r in HF_ROLES if r in roles}
    extra = [roles[r] for r in EXTRA_ROLES if r in roles]
    special_map: dict[str, Any] = dict(named)
    if extra:
        special_map["additional_special_tokens"] = extra
    config = {
        # The generic fast tokenizer reads tokenizer.json as it is, whatever the model type.
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": False,
        **special_map,
    }
    if has_chat_tokens(tok):
        config["chat_template"] = jinja_chat_template(tok)
    engine = _engine_with_special_roles(tok, roles)
    atomic_write_text(d / TOKENIZER_FILE, engine.to_str(pretty=True))
    atomic_write_text(d / "tokenizer_config.json", json.dumps(config, indent=2, ensure_ascii=False))
    atomic_write_text(
        d / "special_tokens_map.json", json.dumps(special_map, indent=2, ensure_ascii=False)
    )
    return {r: tok.special_id(r) for r in HF_ROLES if r in roles}


def _token_text(value: Any) -> str | None:
    # transformers writes a special token as a string or as a serialized AddedToken.
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LmforgeError(f"{path}: not valid JSON ({e}); fix or remove the file") from None
    return data if isinstance(data, dict) else {}


def read_hf_tokenizer(src: str | Path, model_config: dict[str, Any] | None = None) -> Tokenizer:
    """An lmforge Tokenizer from a Hugging Face folder (its tokenizer.json and special tokens).

    Folders without tokenizer.json (only vocab.json/merges.txt or a SentencePiece
    tokenizer.model) are converted through transformers when it is installed.
    """
    from tokenizers import Tokenizer as HFTokenizer

    d = Path(src)
    file = d / TOKENIZER_FILE
    if file.is_file():
        try:
            engine = HFTokenizer.from_file(str(file))
        except Exception as e:
            raise LmforgeError(f"{file}: not a valid tokenizer file ({e})") from None
    else:
        engine = _convert_with_transformers(d)
    roles: dict[str, str] = {}
    for source in (
        _read_json(d / "special_tokens_map.json"),
        _read_json(d / "tokenizer_config.json"),
    ):
        for role in HF_ROLES:
            text = _token_text(source.get(f"{role}_token"))
            if text is not None and engine.token_to_id(text) is not None:
                roles.setdefault(role, text)
    # Fall back to the ids in config.json / generation_config.json.
    for source in (model_config or {}, _read_json(d / "generation_config.json")):
        for role in HF_ROLES:
            i = source.get(f"{role}_token_id")
            if isinstance(i, list):
                i = i[0] if i else None
            if isinstance(i, int) and role not in roles:
                text = engine.id_to_token(i)
                if text is not None:
                    roles[role] = text
    # Chat roles: the source's own tokens where it has ones named like lmforge's
    # (its chat_template, if any, is not read: export writes lmforge's own).
    for role, text in CHAT_TOKENS.items():
        if engine.token_to_id(text) is not None:
            roles.setdefault(role, text)
    # Roles the source lacks map to None, so lmforge's default names are never guessed
    # (`chat_token_ids` then says how to add the chat ones).
    mapping: dict[str, str | None] = {r: roles.get(r) for r in (*HF_ROLES, *EXTRA_ROLES)}
    meta = {"special_tokens": mapping, "source": str(d)}
    return Tokenizer(engine, "hf", meta)


def _convert_with_transformers(d: Path):
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise LmforgeError(
            f"{d}: no {TOKENIZER_FILE}; install transformers (pip install 'lmforge[hf]') "
            "to convert vocab.json/merges.txt or tokenizer.model"
        ) from None
    try:
        hf = AutoTokenizer.from_pretrained(str(d))
        return hf.backend_tokenizer
    except Exception as e:
        raise LmforgeError(f"{d}: no usable tokenizer ({' '.join(str(e).split())[:200]})") from None
