"""Normalize: main text, decoding, failures a user sees on the artifact, language, hashes."""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
from pathlib import Path

import pypdf
import pytest

from guard.types import DocumentError, RawDocument
from tests.support.pdf_builder import encrypted_with_empty_password, minimal_pdf
from workers.stages.clarify import hamming
from workers.stages.normalize import normalize, simhash

EN = "The security team reviewed the incident report and updated the access policy for all vendors."
DE = "Das Sicherheitsteam hat den Vorfallbericht geprüft und die Zugriffsrichtlinie für alle Lieferanten aktualisiert."
FR = "L'équipe de sécurité a examiné le rapport d'incident et mis à jour la politique d'accès des fournisseurs."

BLANK_PDF = minimal_pdf([])  # valid, but its page draws nothing


def _password_protected_pdf(algorithm: str) -> bytes:
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=100, height=100)
    writer.encrypt("secret", algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pages_pdf(count: int) -> bytes:
    """A PDF of `count` pages, page N saying "Page N of the policy manual"."""
    writer = pypdf.PdfWriter()
    for number in range(1, count + 1):
        page = pypdf.PdfReader(io.BytesIO(minimal_pdf([f"Page {number} of the policy manual."]))).pages[0]
        writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def raw(data: bytes | str, content_type: str = "text/plain", uri: str = "file:///doc") -> RawDocument:
    return RawDocument(
        uri=uri, content_type=content_type, data=data.encode() if isinstance(data, str) else data
    )


def test_html_article_keeps_the_article_and_drops_the_boilerplate(samples: Path) -> None:
    doc = normalize(raw((samples / "vpn-zero-day-exploited.html").read_bytes(), "text/html"))
    for kept in ("pre-authentication vulnerability", "integrity checker", "Rotate credentials"):
        assert kept in doc.text
    for dropped in ("Accept all", "Related stories", "All rights reserved", "Subscribe", "dataLayer"):
        assert dropped not in doc.text
    assert doc.markup is not None and "<title>" in doc.markup  # kept for metadata extraction


@pytest.mark.parametrize(
    ("data", "content_type", "reason"),
    [
        (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R", "application/pdf", "corrupt PDF"),
        (b"this is not a pdf at all", "application/pdf", "corrupt PDF"),
        (BLANK_PDF, "application/pdf", "no extractable text (scanned PDF?)"),
        (_password_protected_pdf("RC4-128"), "application/pdf", "encrypted with a password"),
        (_password_protected_pdf("AES-256"), "application/pdf", "encrypted with a password"),
        (random.Random(7).randbytes(4096), "text/plain", "undecodable bytes"),
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8,
            "text/markdown",
            "undecodable bytes",
        ),
        (
            b"<html><head><title>x</title></head><body>\n  \n</body></html>",
            "text/html",
            "empty document: no text",
        ),
        (b"<html><body><script>var a = 1;</script></body></html>", "text/html", "empty document: no text"),
        (b"   \n\t\n\x00  ", "text/plain", "empty document"),
        (b"", "text/markdown", "empty document"),
        (b"PK\x03\x04", "application/zip", "unsupported content type"),
    ],
    ids=[
        "truncated-pdf",
        "not-a-pdf",
        "pdf-without-text",
        "pdf-with-password",
        "aes-256-pdf-with-password",
        "random-bytes",
        "png-as-markdown",
        "empty-page",
        "script-only-page",
        "whitespace-only",
        "zero-bytes",
        "zip",
    ],
)
def test_documents_that_can_never_succeed_fail_at_normalize(
    data: bytes, content_type: str, reason: str
) -> None:
    with pytest.raises(DocumentError) as info:
        normalize(raw(data, content_type))
    assert info.value.stage == "normalize"
    assert info.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("data", "content_type", "expected"),
    [
        ("Café policy".encode("utf-8-sig"), "text/plain", "Café policy"),
        ("Café policy".encode("utf-16"), "text/plain", "Café policy"),
        (
            "Größere Änderungen der Richtlinie für Übermittlungen".encode("cp1252"),
            "text/plain",
            "Größere Änderungen",
        ),
        (
            '<html><head><meta charset="iso-8859-1"><title>t</title></head><body><p>Résumé of the policy</p></body></html>'.encode(
                "latin-1"
            ),
            "text/html",
            "Résumé of the policy",
        ),
        ("a   b\t\tc\r\n\r\n\r\n\r\nd\x00e\x07f\u200b", "text/plain", "a b c\n\ndef"),
    ],
    ids=["utf8-bom", "utf16-bom", "cp1252", "html-meta-charset", "whitespace-and-controls"],
)
def test_text_is_decoded_and_cleaned(data: bytes | str, content_type: str, expected: str) -> None:
    assert expected in normalize(raw(data, content_type)).text


def test_pdf_text_and_document_info_are_read() -> None:
    pdf = minimal_pdf(
        [EN, "Second line (with parentheses)."], {"Title": "Vendor policy", "Author": "Risk Office"}
    )
    doc = normalize(raw(pdf, "application/pdf"))
    assert EN in doc.text and "Second line (with parentheses)." in doc.text
    assert doc.language == "en"
    assert doc.hints == {"title": "Vendor policy", "author": "Risk Office"}


def test_an_aes_256_pdf_with_an_empty_user_password_opens_with_its_text() -> None:
    pdf = encrypted_with_empty_password(minimal_pdf([EN], {"Title": "Vendor policy"}))
    assert pypdf.PdfReader(io.BytesIO(pdf)).is_encrypted
    doc = normalize(raw(pdf, "application/pdf"))
    assert EN in doc.text
    assert doc.hints["title"] == "Vendor policy"


def test_text_extraction_stops_at_the_page_cap() -> None:
    pdf = pages_pdf(5)
    capped = normalize(raw(pdf, "application/pdf"), max_pdf_pages=2)
    assert "Page 1 of" in capped.text and "Page 2 of" in capped.text
    assert "Page 3 of" not in capped.text
    assert "Page 5 of" in normalize(raw(pdf, "application/pdf")).text  # the default cap is far above 5


def test_markdown_markup_is_stripped_and_front_matter_becomes_hints() -> None:
    source = (
        "---\ntitle: Patch policy\nauthor: Sec Team\ndate: 2024-01-02\n---\n"
        "# Patch *policy*\n\nApply **critical** fixes within [7 days](https://x.example/sla).\n\n"
        "- item `one`\n- item two\n\n> quoted note\n"
    )
    doc = normalize(raw(source, "text/markdown"))
    assert (
        doc.text == "Patch policy\n\nApply critical fixes within 7 days.\n\nitem one\nitem two\n\nquoted note"
    )
    assert doc.hints == {"title": "Patch policy", "author": "Sec Team", "published": "2024-01-02"}


@pytest.mark.parametrize(("text", "language"), [(EN, "en"), (DE, "de"), (FR, "fr"), ("Short note.", "und")])
def test_language_is_detected(text: str, language: str) -> None:
    assert normalize(raw(text)).language == language


def test_same_text_gives_same_hash_and_fingerprint_whatever_the_format() -> None:
    plain = normalize(raw(EN))
    html = normalize(raw(f"<html><body><p>{EN}</p></body></html>", "text/html"))
    assert plain.text == html.text
    assert (plain.content_hash, plain.simhash) == (html.content_hash, html.simhash)
    assert normalize(raw(EN + " Extra.")).content_hash != plain.content_hash


def test_simhash_is_a_signed_64_bit_int_that_is_stable_across_processes(samples: Path) -> None:
    text = normalize(raw((samples / "vpn-zero-day-exploited.html").read_bytes(), "text/html")).text
    value = simhash(text)
    assert -(2**63) <= value < 2**63
    code = "import sys; from workers.stages.normalize import simhash; print(simhash(sys.stdin.read()))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # a different str hash() seed must not matter
    other = subprocess.run(
        [sys.executable, "-c", code], input=text, capture_output=True, text=True, check=True, env=env
    )
    assert int(other.stdout) == value


@pytest.mark.parametrize(
    ("old", "new"),
    [("nine days", "ten days"), ("48 hours", "72 hours"), ("regional hospitals", "local hospitals")],
)
def test_a_lightly_edited_copy_is_a_near_duplicate(samples: Path, old: str, new: str) -> None:
    text = normalize(raw((samples / "vpn-zero-day-exploited.html").read_bytes(), "text/html")).text
    assert old in text
    edited = normalize(raw(text.replace(old, new)))
    assert hamming(simhash(text), edited.simhash) <= 3


@pytest.mark.parametrize(
    "other", ["sourdough-starter.md", "data-retention-policy.md", "incident-postmortem-2024-02.md"]
)
def test_unrelated_documents_are_far_apart(samples: Path, other: str) -> None:
    article = normalize(raw((samples / "vpn-zero-day-exploited.html").read_bytes(), "text/html"))
    different = normalize(raw((samples / other).read_bytes(), "text/markdown"))
    assert hamming(article.simhash, different.simhash) > 12
