"""The templates themselves: no hard-coded image, port or secret; helpers carry the chart's prefix."""

import re

from chart_rendering import CHART

TEMPLATES = sorted((CHART / "templates").glob("*"))


def template_lines():
    for path in TEMPLATES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            yield f"{path.name}:{number}", line


def test_no_template_hard_codes_an_image():
    for where, line in template_lines():
        if re.match(r"\s*image:", line):
            assert "{{" in line, f"{where}: hard-coded image: {line.strip()}"


def test_no_template_hard_codes_a_port_number():
    for where, line in template_lines():
        if re.match(r"\s*(containerPort|port|targetPort):\s*[0-9]", line):
            raise AssertionError(f"{where}: hard-coded port: {line.strip()}")


def test_no_template_holds_a_secret_or_url():
    for where, line in template_lines():
        if where.startswith("NOTES.txt"):
            continue  # shows the operator how to create the Secret, with placeholders
        assert not re.search(r"postgres(ql)?://|password\s*[:=]|whsec_", line, re.IGNORECASE), where
        assert "kind: Secret" not in line, f"{where}: the chart never creates the Secret"


def test_named_templates_carry_the_chart_prefix():
    names = []
    for path in TEMPLATES:
        names += re.findall(r'define\s+"([^"]+)"', path.read_text())
    assert names
    for name in names:
        assert name.startswith("outbox-relay."), name


def test_every_value_has_a_comment():
    """Each key of values.yaml has a comment right above it, or sits inside a commented
    default object (resources, securityContext, …)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    for index, line in enumerate(lines):
        stripped = line.strip()
        match = re.match(r"(\s*)([A-Za-z][A-Za-z0-9]*):(.*)$", line)
        if not match or stripped.startswith("#"):
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3).strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        commented = index > 0 and lines[index - 1].strip().startswith("#")
        documented = commented or any(doc for _, doc in stack)
        is_section = rest == ""
        if not is_section:
            assert documented, f"values.yaml:{index + 1}: {key} has no comment"
        stack.append((indent, documented))
