"""Every Triton kernel compiles for an H100 (sm_90) without a GPU: Triton's own ptxas, no device.

The interpreter runs kernels as Python, so it accepts code the compiler
refuses (a module-level global read inside a kernel, a method call on a
constexpr) and misses 32-bit index arithmetic. This compiles each kernel,
for the dtypes and specialisations the launchers use, to PTX and SASS.

Run as a test it compiles in a child process: the test session imports
triton in interpreter mode (conftest.py), which the compiler cannot use.
``python tests/test_triton_compile.py [case ...]`` runs the cases directly.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

SKIP = 77  # the child's exit status for "this triton cannot run the check"


def compile_kernel(fn, types: dict, consts: dict, warps: int = 4):
    """Compile ``fn`` with pointer/scalar ``types`` by argument name (default i32) and ``consts``."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    sig, constexprs = {}, {}
    for i, name in enumerate(fn.arg_names):
        if name in consts:
            sig[name] = "constexpr"
            constexprs[(i,)] = consts[name]
        else:
            sig[name] = types.get(name, "i32")
    src = ASTSource(fn=fn, signature=sig, constexprs=constexprs)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps})


def cases():
    """name -> (kernel, argument types by name, constexprs): what the launchers compile."""
    from hminsel.triton import batched, block_min, head, pairs, step, window

    def gemm_types(dt, **more):
        return {"x_ptr": f"*{dt}", "y_ptr": f"*{dt}", "rows_ptr": "*i64", "mu_ptr": "*fp32",
                "xn_ptr": "*fp32", "yn_ptr": "*fp32", **more}

    gemm = dict(PRECISION="ieee", BLOCK_M=block_min.BLOCK_M, BLOCK_N=block_min.BLOCK_N,
                BLOCK_K=block_min.BLOCK_K)
    ring = {"mind_ptr": "*fp32", "ring_ptr": "*i64"}
    keep = {"best_ptr": "*fp32", "second_ptr": "*fp32", "bidx_ptr": "*i64"}
    return {
        "step-fp32-d3": (step.step_kernel, {"x_ptr": "*fp32", **ring}, {"BLOCK_N": 2048, "BLOCK_D": 4}),
        "step-bf16-d1024": (step.step_kernel, {"x_ptr": "*bf16", **ring},
                            {"BLOCK_N": 64, "BLOCK_D": 128}),
        "head": (head.head_step_kernel, {"xh_ptr": "*fp16", "h_ptr": "*fp32", "hidx_ptr": "*i64",
                                         "ring_ptr": "*i64", "TAU_KEY": "i64"},
                 {"BLOCK_N": 64, "BLOCK_D": 128}),
        "gemm-fp32": (block_min.gemm_kernel, gemm_types("fp32", **keep),
                      dict(gemm, SELF_MASK=True, CENTER=True)),
        "gemm-bf16": (block_min.gemm_kernel, gemm_types("bf16", **keep),
                      dict(gemm, SELF_MASK=False, CENTER=False)),
        "certify": (block_min.certify_kernel,
                    {"x_ptr": "*fp16", "y_ptr": "*fp16", "rows_ptr": "*i64", "best_ptr": "*fp32",
                     "second_ptr": "*fp32", "bidx_ptr": "*i64", "xn_ptr": "*fp32",
                     "yn_max_ptr": "*fp32", "coef": "fp32", "value_ptr": "*fp32",
                     "index_ptr": "*i64", "sure_ptr": "*i8"}, {"BLOCK_N": 64, "BLOCK_D": 128}),
        "direct-stride1": (block_min.direct_kernel,  # d = 1: a stride of 1 may be specialised
                           {"x_ptr": "*fp32", "y_ptr": "*fp32", "rows_ptr": "*i64",
                            "value_ptr": "*fp32", "index_ptr": "*i64"},
                           {"SELF_MASK": True, "stride_y": 1, "BLOCK_N": 2048, "BLOCK_D": 4}),
        "window-fp16": (window.window_kernel,
                        gemm_types("fp16", thresh_ptr="*fp32", cand_ptr="*i64", count_ptr="*i32"),
                        dict(gemm, SELF_MASK=True, CENTER=False, WINDOW=window.WINDOW)),
        "tri-fp32": (pairs.tri_kernel, {"x_ptr": "*fp32", "mu_ptr": "*fp32", "xn_ptr": "*fp32",
                                        "keys_ptr": "*i64"},
                     {"CENTER": True, "PRECISION": "ieee", "BLOCK": pairs.BLOCK,
                      "BLOCK_K": block_min.BLOCK_K}),
        "batched-d3": (batched.fps_batched_kernel,
                       {"x_ptr": "*fp32", "lo_ptr": "*i64", "hi_ptr": "*i64", "k_ptr": "*i64",
                        "start_ptr": "*i64", "idx_ptr": "*i64", "dist_ptr": "*fp32"},
                       {"BLOCK_P": 1024, "BLOCK_D": 4}),
    }


CASE_NAMES = ["step-fp32-d3", "step-bf16-d1024", "head", "gemm-fp32", "gemm-bf16", "certify",
              "direct-stride1", "window-fp16", "tri-fp32", "batched-d3"]


@pytest.fixture(scope="module")
def report():
    """Compile every case once, in a child process; ``{case: "ok" or the error}``."""
    pytest.importorskip("triton", reason="triton is not installed (pip install triton)")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, __file__], capture_output=True, text=True, timeout=900,
                          env=env)
    if proc.returncode == SKIP:
        pytest.skip(proc.stdout.strip().splitlines()[-1])
    lines = [line.split(" ", 2) for line in proc.stdout.splitlines() if line.startswith(("ok ", "FAIL "))]
    out = {words[1]: "ok" if words[0] == "ok" else words[2] for words in lines}
    return out if out else {"?": (proc.stdout + proc.stderr)[-4000:]}


@pytest.mark.parametrize("case", CASE_NAMES)
def test_kernel_compiles_for_sm90(report, case):
    assert report.get(case) == "ok", report.get(case, report)


def main(names) -> int:
    try:
        from triton.backends.compiler import GPUTarget  # noqa: F401
        from triton.compiler import ASTSource  # noqa: F401
        table = cases()
        assert sorted(table) == sorted(CASE_NAMES), "CASE_NAMES and cases() disagree"
    except (ImportError, TypeError) as exc:
        print(f"this triton cannot run the compile check ({type(exc).__name__}: {exc})")
        return SKIP
    failed = 0
    for name in names or CASE_NAMES:
        fn, types, consts = table[name]
        try:
            compiled = compile_kernel(fn, types, consts)
            assert len(compiled.asm.get("cubin", b"")) > 0, "no cubin"
            print(f"ok {name}", flush=True)
        except TypeError as exc:  # ASTSource's arguments moved between triton releases
            print(f"this triton's ASTSource takes other arguments ({exc})")
            return SKIP
        except Exception as exc:  # a compile error: report it, go on with the others
            failed += 1
            print(f"FAIL {name} {type(exc).__name__}: {' | '.join(str(exc).splitlines()[:8])}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
