"""Tokenizer folders between lmforge and Hugging Face ``transformers``.

Both sides store the pipeline as the same ``tokenizer.json`` (the ``tokenizers``
library's format), so conversion is about the special tokens: lmforge records
the role -> token mapping in ``lmforge.json`` (``special_tokens``), transformers
in ``tokenizer_config.json`` / ``special_tokens_map.json`` (``bos_token``, ...).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..common import LmforgeError, atomic_write_text
from ..tokenizers.base import TOKENIZER_FILE, Tokenizer

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


def write_hf_tokenizer(tok: Tokenizer, folder: str | Path, model_max_length: int) -> dict[str, int]:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json into `folder`.

    Returns {role: id} of bos/eos/pad/unk for the model's config files.
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
    atomic_write_text(d / TOKENIZER_FILE, tok.engine.to_str(pretty=True))
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
    # Roles the source lacks map to None, so lmforge's default names are never guessed.
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
