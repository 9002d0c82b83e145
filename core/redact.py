"""One redaction for every text driftboard keeps: credentials become ``<redacted>``.

Environment values, a pasted ``collect_env`` report, notes, labels and tags
all pass through ``redact_text`` before they reach a bundle or a database. It
recognises credentials by shape and by the structure around them, never by
randomness alone: a torch build's ``Git Hash 80afa710…``, a sha256 digest, a
GPU UUID or ``2.13.0+git1a2b3c4`` are facts a comparison needs, so free text
has no "long random string" rule (``core.fingerprint.environment`` adds one for
the short settings of allowlisted variables only). What is recognised:

- token shapes with a fixed prefix (AWS key ids, GitHub, GitLab, Slack, Hugging
  Face, OpenAI, Stripe, Google, npm, PyPI), JWTs, PEM private key blocks;
- URLs: the user part (``https://<token>@host``, ``user:pa/ss@host``), the
  path of webhook URLs (Slack, Discord, Teams, Zapier, Telegram, any
  ``/hooks/`` or ``/webhooks/`` path), secret query parameters through the
  key rule below;
- ``Authorization:`` headers and ``Bearer``/``Basic`` credentials;
- ``key=value``, ``key: value`` and ``"key": "value"`` pairs whose key names a
  credential (password, token, secret, api key, signature, ``sig``, ``pwd``,
  …), as in query strings, libpq connection strings, ini files and JSON.

The key, the scheme and the host stay, so the text still says what was there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

REDACTED = "<redacted>"

# One lookbehind before the group instead of a \b per alternative: ten times faster
# on long text, where Python's re tries every alternative at every position.
_TOKEN_SHAPES = re.compile(
    r"""
    (?<![A-Za-z0-9_])(?:
      (?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b   # AWS access key id
    | gh[pousr]_[A-Za-z0-9]{20,}                    # GitHub tokens
    | github_pat_[A-Za-z0-9_]{20,}
    | glpat-[A-Za-z0-9_\-]{20,}                      # GitLab
    | xox[abposre]-[A-Za-z0-9\-]{10,}                # Slack
    | hf_[A-Za-z0-9]{20,}                            # Hugging Face
    | sk-[A-Za-z0-9_\-]{20,}                         # OpenAI-style secret keys
    | [rs]k_(?:live|test)_[A-Za-z0-9]{16,}           # Stripe
    | AIza[0-9A-Za-z_\-]{30,}                        # Google API keys
    | npm_[A-Za-z0-9]{36}\b                          # npm
    | pypi-[A-Za-z0-9_\-]{50,}                       # PyPI upload tokens
    | eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*   # JWT: header.payload.signature
    | -----BEGIN[ A-Z]{0,20}PRIVATE\ KEY-----        # PEM: the body up to the next "-----", then END
      (?:[^-]++|-(?!----))*+(?:-----END[ A-Z]{0,20}PRIVATE\ KEY-----)?
    )
    """,
    re.VERBOSE,
)

# scheme://userinfo@ : the user part alone can be a token (https://<token>@github.com),
# and a password may hold '/' or '@' unencoded, so it runs to the last '@' of the
# word (possessive chunks: no backtracking on long text). ``host:8080/path@v1`` is
# a port, not a password; ``git@`` is ssh's user.
_URL_USERINFO = re.compile(
    r"""
    (?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)
    (?!git@)
    (?: [^\s/?\#@:'"]{1,512}+@
      | [^\s/?\#@:'"]{0,512}+:(?!\d{1,5}(?:[/?\#\s]|$))(?:[^\s'"@]{0,512}+@)++ )
    """,
    re.VERBOSE,
)

# Services whose URL path is the credential (a webhook URL alone lets anyone post).
_WEBHOOK_URL = re.compile(
    r"""
    (?P<keep>\bhttps?://
      (?: hooks\.slack\.com/
        | (?:[\w\-]+\.)?discord(?:app)?\.com/api/webhooks/
        | [\w\-.]*\.webhook\.office\.com/
        | outlook\.office(?:365)?\.com/webhook/
        | hooks\.zapier\.com/
        | api\.telegram\.org/
        | [^\s/'"]{1,256}/(?:[^\s/?#'"]{1,256}/){0,8}?(?:hooks|webhooks?)/
      ))
    (?P<secret>[^\s'"<>]+)
    """,
    re.VERBOSE | re.IGNORECASE,
)

_AUTHORIZATION = re.compile(
    r"""(?<![A-Za-z0-9_])(?P<keep>(?:proxy-)?authorization["']?\s*[:=]\s*["']?
        (?:(?:bearer|basic|token|digest|negotiate|aws4-hmac-sha256)\s+)?)
        (?P<secret>[^\r\n"']+)""",
    re.VERBOSE | re.IGNORECASE,
)

_SCHEME_CREDENTIAL = re.compile(r"(?<![A-Za-z0-9_])(?P<keep>(?:bearer|basic)\s+)(?P<secret>[A-Za-z0-9._~+/\-]{8,}=*)", re.IGNORECASE)

# A key that names a credential: these words anywhere, or these short ones as the
# key's last part ("NCCL_AUTH", "x-api-key", "sig"). "tokenizer" is not a token.
_SECRET_KEY = re.compile(
    r"""
      token(?!i[sz])|secret|passw|passphrase|credential|signature|cookie
    | api[_\-]?key|access[_\-]?key|private[_\-]?key|account[_\-]?key|session[_\-]?id
    | (?:^|[_.\-])(?:sig|pwd|pw|pass|key|auth)$
    """,
    re.VERBOSE | re.IGNORECASE,
)

# key=value (query strings, libpq, shells, ini), key: value (YAML, headers),
# "key": "value" (JSON, Python reprs). The separator is not '==' (pip pins) nor
# '://' (a URL's scheme). Keys are found first and a value is read only after a
# secret key, so a long line of harmless pairs costs one pass.
_KEY = re.compile(
    r"""
    (?<![A-Za-z0-9_.\-])
    (?P<q>["']?)(?P<key>[A-Za-z_][A-Za-z0-9_.\-]{0,127})(?P=q)
    (?P<sep>\s*(?:=|:)\s*)(?![=:/])
    """,
    re.VERBOSE,
)
_VALUE = re.compile(r""""(?:[^"\\\n]|\\.)*+"|'(?:[^'\\\n]|\\.)*+'|[^\s&;,'"()\[\]{}]++""")
# After "key:" (not "key="), an unquoted value runs to the end of the line: YAML's
# ``password: correct horse battery staple``.
_VALUE_STOP = re.compile(r"[\r\n,}\]]")


def redact_text(text: str) -> str:
    """``text`` with every credential it recognises replaced by ``<redacted>``; idempotent."""
    if not text:
        return text
    text = _TOKEN_SHAPES.sub(REDACTED, text)
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    text = _WEBHOOK_URL.sub(_keep_prefix, text)
    text = _AUTHORIZATION.sub(_keep_prefix, text)
    text = _SCHEME_CREDENTIAL.sub(_keep_prefix_if(_looks_random), text)
    return _redact_pairs(text)


def looks_secret(text: str) -> bool:
    """True when ``redact_text`` would change ``text``."""
    return redact_text(text) != text


def _keep_prefix(match: re.Match[str]) -> str:
    return match["keep"] + (REDACTED if match["secret"].strip() else match["secret"])


def _keep_prefix_if(test: Callable[[str], bool]) -> Callable[[re.Match[str]], str]:
    return lambda m: _keep_prefix(m) if test(m["secret"]) else m[0]


def _looks_random(word: str) -> bool:
    # "Bearer eyJ…", "Basic dXNlcjpwYXNz", not the prose of "Basic Linear Algebra Subprograms".
    return any(c.isdigit() for c in word) or "=" in word or any(c.isupper() for c in word[1:])


def _redact_pairs(text: str) -> str:
    out: list[str] = []
    done = search_from = 0
    while key := _KEY.search(text, search_from):
        search_from = key.end()  # a harmless value may itself hold a pair ('"config": "password=x"')
        value = _VALUE.match(text, search_from) if _SECRET_KEY.search(key["key"]) else None
        if value is None:
            continue
        start, end = value.span()
        if value[0][0] not in "\"'" and ":" in key["sep"]:
            end = _line_value_end(text, start)
        out += [text[done:start], _redacted_value(text[start:end])]
        done = search_from = end
    out.append(text[done:])
    return "".join(out)


def _line_value_end(text: str, start: int) -> int:
    stop = _VALUE_STOP.search(text, start)
    return start + len(text[start:stop.start() if stop else len(text)].rstrip())


def _redacted_value(value: str) -> str:
    quote = value[0] if value[0] in "\"'" and len(value) >= 2 and value[-1] == value[0] else ""
    inner = value[1:-1] if quote else value
    return value if inner in ("", REDACTED) else f"{quote}{REDACTED}{quote}"


def redact_strings(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings) with ``redact_text`` applied to every string, keys included."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {redact_strings(k): redact_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_strings(v) for v in value)
    return value
