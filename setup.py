"""Build hook for the one compiled module, ``iapo_gym._area`` (OpenCV-exact area resampling, a speed-up only).

Everything else is declared in ``setup.cfg``. The extension is optional: where no C compiler is found the
install goes on and ``iapo_gym.tools.resample`` uses ``cv2.resize`` (same output, slower).
"""

import sys

from setuptools import Extension, setup

# no fused multiply-adds: the kernel must round like OpenCV's separate multiply and add
args = [] if sys.platform == "win32" else ["-O3", "-ffp-contract=off", "-fno-fast-math", "-fno-math-errno"]

setup(ext_modules=[Extension("iapo_gym._area", ["iapo_gym/_area.c"], extra_compile_args=args, optional=True)])
