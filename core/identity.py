"""How a signed-in person is named, and the only two ways a grant or LOREGUARD_ADMINS may name one.

An identity is either a verified e-mail address ("ada@example.org", lower case) or an issuer-qualified subject
("https://login.example.org|248289761001"): the provider's `iss` and `sub` joined by "|". An e-mail counts only
when the provider says `email_verified: true`; anyone may type any address into an unverified `email` claim,
and a bare `sub` is only unique within its issuer, so neither alone may match an admin's address.
Pure functions: the settings (LOREGUARD_ADMINS), the Users page and every sign-in use them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SEPARATOR = "|"
MAX_IDENTITY = 512  # an issuer URL plus a subject (255 characters at most by the OpenID Connect spec)
# A plain address: no spaces, no "|" and no ":" (so it can never read as an issuer-qualified subject).
_EMAIL = re.compile(r"[^\s@|:]+@[^\s@|:]+\.[^\s@|:]+")
_ISSUER = re.compile(r"https?://[^\s|]+")
FORMS = "a verified e-mail address (ada@example.org) or an issuer-qualified subject (https://issuer.example|subject)"


class NotAnIdentity(ValueError):
    """A name that is neither a plain e-mail address nor an issuer-qualified subject."""


def _printable(text: str) -> bool:
    return text.isprintable() and not any(ch.isspace() for ch in text)


def is_email(text: str) -> bool:
    return _EMAIL.fullmatch(text) is not None and _printable(text)


def normalized(entry: str) -> str:
    """`entry` as identities are compared (e-mails in lower case, subjects exactly), or NotAnIdentity."""
    text = entry.strip()
    if len(text) > MAX_IDENTITY or not text or not _printable(text):
        raise NotAnIdentity(f"{text[:80]!r} is not {FORMS}")
    issuer, separator, subject = text.partition(SEPARATOR)  # an issuer's URL holds no '|'; a subject may
    if separator:
        # Issuers are compared exactly (OpenID Connect Core 3.1.3.7), but a trailing slash and the scheme's and
        # host's case are ways of writing one issuer; subjects are case-sensitive and kept as given.
        if not _ISSUER.fullmatch(issuer) or not subject:
            raise NotAnIdentity(f"{text[:80]!r} is not {FORMS}: the part before '|' must be the issuer's URL")
        return f"{_issuer(issuer)}{SEPARATOR}{subject}"
    if is_email(text):
        return text.lower()
    raise NotAnIdentity(
        f"{text[:80]!r} is not {FORMS}; a bare subject is ambiguous (any provider may issue it): "
        "prefix it with its issuer and '|'"
    )


def _issuer(url: str) -> str:
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}".rstrip("/")


def verified(claims: Mapping[str, Any]) -> bool:
    """The provider vouches for the e-mail: `email_verified` is true (a JSON boolean, or the string some send)."""
    flag = claims.get("email_verified")
    return flag is True or (isinstance(flag, str) and flag.strip().lower() == "true")


def identity_of(claims: Mapping[str, Any]) -> str:
    """The person's identity from their ID-token claims: the verified e-mail, else issuer|subject.

    Raises NotAnIdentity when the claims hold neither (no verified e-mail, and no issuer or subject).
    """
    email = str(claims.get("email") or "").strip()
    if email and verified(claims) and is_email(email):
        return email.lower()
    issuer, subject = str(claims.get("iss") or "").strip(), str(claims.get("sub") or "").strip()
    if not issuer or not subject:
        raise NotAnIdentity("the identity provider gave no verified e-mail, and no issuer and subject")
    return normalized(f"{issuer}{SEPARATOR}{subject}")
