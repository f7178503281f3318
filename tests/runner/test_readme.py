"""The README's reference parts are generated from the code; these keep them from going stale."""

from __future__ import annotations

import re

from runner.config import describe_keys
from tests.support import ROOT


def test_readme_lists_every_config_key_as_the_schema_describes_it():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- keys:start -->\n```\n(.*?)\n```\n<!-- keys:end -->", readme, re.S)
    assert block, "README.md lost its keys block"
    assert block.group(1) == describe_keys(), "regenerate README's key table from describe_keys()"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make train" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
