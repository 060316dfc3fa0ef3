"""A one-line Triton kernel over ``hminsel.triton.keys.pack``, for tests.

Import it inside a test, after the interpreter flag is set (a kernel is
interpreted or compiled as its module is imported).
"""
import triton
import triton.language as tl

from hminsel.triton.keys import pack


@triton.jit
def pack_kernel(v_ptr, i_ptr, o_ptr, N: tl.constexpr):
    """o[:N] = pack(v[:N], i[:N]): fp32 values, int64 indices, int64 keys; one program."""
    offs = tl.arange(0, N)
    tl.store(o_ptr + offs, pack(tl.load(v_ptr + offs), tl.load(i_ptr + offs)))
