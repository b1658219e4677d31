from .helpers import run_child

CHILD = """
import sys
import pipeline_project.fileops.clamav
import pipeline_project.fileops.copy
import pipeline_project.fileops.hashing
import pipeline_project.fileops.paths
import pipeline_project.fileops.scan
print(sorted(name for name in sys.modules if name.split(".")[0] == "django"))
"""


def test_fileops_never_imports_django():
    child = run_child(CHILD)

    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "[]"
