"""The README's tour shows the example routines as examples/reports.py has them: each function in its excerpt is
in the file, line for line (the tests run the file, so the README shows code that runs)."""

from __future__ import annotations

import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_every_function_of_the_readme_excerpt_is_in_examples_reports() -> None:
    readme = (REPO / "README.md").read_text()
    excerpt = re.search(r"```python\n# examples/reports\.py \(excerpt\)\n(.*?)```", readme, flags=re.DOTALL)
    assert excerpt is not None, "the README's tour has no examples/reports.py excerpt"
    source = (REPO / "examples" / "reports.py").read_text()
    functions = re.split(r"\n\n\n(?=@workpath\.routine)", excerpt.group(1))[1:]
    assert len(functions) == 2
    for function in functions:
        assert function.strip() in source, f"the README shows code examples/reports.py does not have:\n{function}"
