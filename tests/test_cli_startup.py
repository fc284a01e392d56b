"""Start-up of the command line: building the parser must not load the fit modules.

``swapmc --help`` (and every command) builds the whole parser first. The packages
``swapmc.analysis``, ``swapmc.library`` and ``swapmc.md`` import their submodules on first use,
and the parser keeps its own copies of three lists whose defining modules load scipy.stats /
scipy.optimize or compile Numba kernels; these tests keep the copies equal to the originals
and fail if a heavy import creeps back into the parser.
"""

import json
import subprocess
import sys

from helpers import subprocess_env


def test_parser_copies_agree_with_their_sources():
    from swapmc.analysis.loss_models import FAST_TERMS
    from swapmc.analysis.nonaffine import DEFAULT_D2MIN_CUTOFF
    from swapmc.md.dms_analysis import SECTIONS
    from swapmc.md.dms_analysis_cli import ANALYSIS_SECTIONS, FAST_TERM_CHOICES
    from swapmc.md.shear_cli import D2MIN_CUTOFF_HELP

    assert ANALYSIS_SECTIONS == SECTIONS
    assert FAST_TERM_CHOICES == tuple(FAST_TERMS)
    assert D2MIN_CUTOFF_HELP == DEFAULT_D2MIN_CUTOFF


def test_building_the_parser_loads_no_fit_module():
    heavy = ("scipy.stats", "scipy.optimize", "swapmc.md.dms_analysis", "swapmc.md.dms_scan",
             "swapmc.library.build", "swapmc.analysis.beta_relaxation",
             "swapmc.analysis.loss_models", "swapmc.analysis.spectroscopy")
    code = (
        "import json, sys\n"
        "from swapmc.cli import build_parser\n"
        "build_parser()\n"
        f"print(json.dumps(sorted(m for m in sys.modules for h in {heavy!r}\n"
        "                         if m == h or m.startswith(h + '.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=subprocess_env(), timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_lazy_packages_expose_their_public_names():
    import swapmc.analysis as analysis
    import swapmc.library as library
    import swapmc.md as md

    for package in (analysis, library, md):
        for name in package.__all__:
            assert getattr(package, name) is not None, (package.__name__, name)
        assert set(package.__all__) <= set(dir(package))


def test_library_certify_is_the_function_after_its_module_is_imported():
    code = ("import swapmc.library.certify, swapmc.library.cli\n"
            "from swapmc.library import certify\n"
            "print(callable(certify) and not hasattr(certify, '__file__'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=subprocess_env(), timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True"
