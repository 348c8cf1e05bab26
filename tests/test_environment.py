"""environment.yml (for conda users) pins exactly what pyproject.toml pins."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_environment_yml_matches_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = (ROOT / "environment.yml").read_text()
    pinned = set(re.findall(r"^\s+- ([A-Za-z0-9_.\-]+==[^\s#]+)", env, flags=re.M))
    assert pinned == set(deps)
    assert all("==" in d for d in deps)


def test_constraints_agree_with_pins():
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    frozen = dict(l.split("==", 1) for l in lines if "==" in l)
    norm = lambda s: s.lower().replace("_", "-")
    frozen = {norm(k): v for k, v in frozen.items()}
    for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, ver = d.split("==")
        assert frozen.get(norm(name)) == ver, d
