"""Types of the compiled area kernel (``_area.c``): the C function takes any buffer; the package passes arrays."""

import numpy as np
import numpy.typing as npt

def resize(src: npt.NDArray[np.uint8], dst: npt.NDArray[np.uint8], /) -> bool: ...
