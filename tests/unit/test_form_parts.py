"""Counting a form body's parts as it arrives, and the file names kept from it."""

import pytest

from connectors.filenames import safe_filename
from connectors.webform.body import read
from connectors.webform.parts import BadForm, Intake, Limits, TooMuch

B = "b0undary"
CT = f"multipart/form-data; boundary={B}"


def part(name: str, filename: str | None = None) -> bytes:
    extra = f'; filename="{filename}"' if filename is not None else ""
    return f'--{B}\r\nContent-Disposition: form-data; name="{name}"{extra}\r\n\r\nvalue\r\n'.encode()


BODY = part("message") + part("a", "a.txt") + part("email") + part("b", "b.txt") + f"--{B}--\r\n".encode()


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 11, 64])
def test_every_split_of_the_body_counts_the_same_parts(size):
    intake = Intake(CT, Limits())
    for i in range(0, len(BODY), size):
        intake.feed(BODY[i:i + size])
    assert (intake.files, intake.fields, intake.closed, intake.body) == (2, 2, True, BODY)


def test_the_first_excess_part_is_refused_before_the_rest_arrives():
    body = part("message") + part("f", "1") * 1000
    intake = Intake(CT, Limits(max_files=3))
    fed = 0
    with pytest.raises(TooMuch) as refused:
        for i in range(0, len(body), 100):
            intake.feed(body[i:i + 100])
            fed += 100
    assert refused.value.reason == "too_many_files"
    assert fed < len(part("message") + part("f", "1") * 5)


def test_bare_cr_line_endings_still_count_as_line_starts():
    body = (f'--{B}\rContent-Disposition: form-data; name="f"; filename="x"\r\rv\r' * 5).encode()
    with pytest.raises(TooMuch):
        Intake(CT, Limits(max_files=4)).feed(body)


def test_read_holds_a_worker_to_the_same_limits():
    # What the normalizer re-reads from the stream is counted before it is parsed, too.
    with pytest.raises(TooMuch):
        read(CT, part("f", "x") * 101 + f"--{B}--\r\n".encode())
    assert len(read(CT, BODY).files) == 2


def test_a_boundary_over_70_characters_is_refused():
    with pytest.raises(BadForm):
        Intake("multipart/form-data; boundary=" + "x" * 71, Limits())


@pytest.mark.parametrize("raw, kept", [
    ("../../etc/passwd", "passwd"),
    ("..", "upload"),
    ("a\\b\\c.txt", "c.txt"),
    ("re\x00port\x1f.pdf", "report.pdf"),
    ("invoice\u202egnp.exe", "invoicegnp.exe"),  # a right-to-left override hides ".exe"
    ("报价单 2024.pdf", "报价单 2024.pdf"),
    (".htaccess", "htaccess"),
    ("", "upload"),
])
def test_file_names_are_a_name_never_a_path(raw, kept):
    assert safe_filename(raw) == kept


def test_a_long_name_is_cut_keeping_its_extension():
    name = safe_filename("文" * 300 + ".pdf")
    assert len(name) == 200 and name.endswith(".pdf")
