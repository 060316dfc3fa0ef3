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
import re
import subprocess
import sys

import pytest

SKIP = 77  # the child's exit status for "this triton cannot run the check"
# What Triton's loader checks on an H100/H200 before a launch (OutOfResources otherwise):
# the opt-in shared memory of one block and the register file one block may fill.
SM90_SHARED_OPTIN = 232448
SM90_REGISTERS = 65536
# The kernels that compute direct-form values: launched with ``direct.EXACT_SUMS`` (no fused
# multiply-add), so compiled here with it too, and their SASS must hold no FFMA.
DIRECT_KERNELS = ("step_kernel", "head_step_kernel", "direct_kernel", "certify_kernel",
                  "pick_loop_kernel", "bucket_step_kernel", "bucket_batched_kernel",
                  "fps_batched_kernel", "fps_batched_stream_kernel", "cloud_kernel")


def cuobjdump(compiled, flag: str):
    """What Triton's cuobjdump prints with ``flag`` for the cubin Triton built; None where this
    triton has no ``knobs.nvidia.cuobjdump``."""
    import tempfile
    try:
        from triton import knobs
        tool = knobs.nvidia.cuobjdump.path
    except (ImportError, AttributeError):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        cubin = os.path.join(tmp, "kernel.cubin")
        with open(cubin, "wb") as f:
            f.write(compiled.asm["cubin"])
        return subprocess.run([tool, flag, cubin], capture_output=True, text=True, timeout=300).stdout


def resource_usage(compiled) -> tuple[int, int]:
    """``(stack bytes, registers)`` of the cubin Triton built, read by Triton's cuobjdump.

    A register spill shows as stack (local memory) use; the kernels keep no
    local arrays, so any stack is a spill. (``compiled.metadata.n_spills`` /
    ``n_regs`` are filled in only when the binary is loaded on a GPU.) A
    triton without ``knobs.nvidia.cuobjdump`` gets its ptxas run again on the
    PTX with ``-v`` instead (spill stores, not stack).
    """
    import tempfile
    out = cuobjdump(compiled, "--dump-resource-usage")
    if out is None:
        from triton.backends.nvidia import compiler as nv
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "kernel.ptx")
            with open(src, "w") as f:
                f.write(compiled.asm["ptx"])
            log = subprocess.run([nv.get_ptxas(90).path, "-v", "--gpu-name=sm_90a", src, "-o",
                                  src + ".o"], capture_output=True, text=True, timeout=300).stderr
        regs = re.findall(r"Used (\d+) registers", log)
        spills = sum(int(b) for b in re.findall(r"(\d+) bytes spill stores", log))
        return spills, int(regs[-1]) if regs else -1
    usage = re.search(r"REG:(\d+) STACK:(\d+)", out)
    if usage is None:
        raise RuntimeError("cuobjdump printed no resource usage:\n" + out[-2000:])
    return int(usage.group(2)), int(usage.group(1))


def compile_kernel(fn, types: dict, consts: dict, warps: int = 4, div16=None):
    """Compile ``fn`` with pointer/scalar ``types`` by argument name (default i32) and ``consts``.

    ``div16``: None compiles with no divisibility facts; else the JIT's view of
    aligned tensors: every pointer 16-byte aligned, and the integer arguments
    named in ``div16`` divisible by 16 (``tt.divisibility``, as the JIT
    specialises them on a GPU).
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    sig, constexprs, attrs = {}, {}, {}
    for i, name in enumerate(fn.arg_names):
        if name in consts:
            sig[name] = "constexpr"
            constexprs[(i,)] = consts[name]
        else:
            sig[name] = types.get(name, "i32")
            if div16 is not None and (sig[name].startswith("*") or name in div16):
                attrs[(i,)] = [["tt.divisibility", 16]]
    from hminsel.triton.block_min import GEMM_FUSION
    from hminsel.triton.direct import EXACT_SUMS
    options = {"num_warps": warps, **(EXACT_SUMS if fn.__name__ in DIRECT_KERNELS else GEMM_FUSION)}
    src = ASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options=options)


def fused_multiply_adds(compiled) -> int:
    """FFMA instructions in the SASS; -1 where this triton has no cuobjdump."""
    sass = cuobjdump(compiled, "-sass")
    return -1 if sass is None else len(re.findall(r"\bFFMA\b", sass))


def cases():
    """name -> (kernel, argument types by name, constexprs, num_warps): what the launchers compile."""
    from hminsel.triton import batched, block_min, bucket, head, head_tiled, pairs, step, window
    from hminsel.triton.direct import blocks

    def gemm_types(dt, **more):
        return {"x_ptr": f"*{dt}", "y_ptr": f"*{dt}", "rows_ptr": "*i64", "mu_ptr": "*fp32",
                "xn_ptr": "*fp32", "yn_ptr": "*fp32", **more}

    def tile(d):  # the direct-form tile of dimension d, as the launchers size it
        block_n, block_d, warps = blocks(d)
        return {"BLOCK_N": block_n, "BLOCK_D": block_d}, warps

    def batch(d):  # fps_batched's largest tile at dimension d (in registers; or a chunk)
        block_d = max(2, 1 << (d - 1).bit_length())
        block_p = min(batched.max_points(d), batched.ON_CHIP_ELEMENTS // block_d)
        return {"BLOCK_P": block_p, "BLOCK_D": block_d}, batched.num_warps(block_p, block_d)

    gemm = dict(PRECISION="ieee", BLOCK_M=block_min.BLOCK_M, BLOCK_N=block_min.BLOCK_N,
                BLOCK_K=block_min.BLOCK_K)
    ring = {"mind_ptr": "*fp32", "ring_ptr": "*i64", "base_ptr": "*i64"}
    keep = {"best_ptr": "*fp32", "second_ptr": "*fp32", "bidx_ptr": "*i64"}
    direct = {"x_ptr": "*fp32", "y_ptr": "*fp32", "rows_ptr": "*i64", "value_ptr": "*fp32",
              "index_ptr": "*i64"}
    batched_types = {"lo_ptr": "*i64", "hi_ptr": "*i64", "k_ptr": "*i64", "start_ptr": "*i64",
                     "idx_ptr": "*i64", "dist_ptr": "*fp32"}
    certify = {"rows_ptr": "*i64", "best_ptr": "*fp32", "second_ptr": "*fp32", "bidx_ptr": "*i64",
               "xn_ptr": "*fp32", "yn_max_ptr": "*fp32", "coef": "fp32", "value_ptr": "*fp32",
               "index_ptr": "*i64", "sure_ptr": "*i8"}
    table = {
        "head": (head.head_step_kernel, {"xh_ptr": "*fp16", "h_ptr": "*fp32", "hidx_ptr": "*i64",
                                         "ring_ptr": "*i64", "base_ptr": "*i64", "TAU_KEY": "i64"},
                 *tile(1024)),
        "gemm-fp32": (block_min.gemm_kernel, gemm_types("fp32", **keep),
                      dict(gemm, SELF_MASK=True, CENTER=True), block_min.gemm_warps(True)),
        "gemm-bf16": (block_min.gemm_kernel, gemm_types("bf16", **keep),
                      dict(gemm, SELF_MASK=False, CENTER=False), block_min.gemm_warps(False)),
        "window-fp32": (window.window_kernel,
                        gemm_types("fp32", thresh_ptr="*fp32", cand_ptr="*i64", count_ptr="*i32"),
                        dict(gemm, SELF_MASK=True, CENTER=True, WINDOW=window.WINDOW,
                             BLOCK_K=window.block_k(True)),
                        block_min.gemm_warps(True)),
        "certify": (block_min.certify_kernel, {"x_ptr": "*fp16", "y_ptr": "*fp16", **certify},
                    *tile(1024)),
        "certify-fp32-d3": (block_min.certify_kernel, {"x_ptr": "*fp32", "y_ptr": "*fp32", **certify},
                            *tile(3)),
        "direct-stride1": (block_min.direct_kernel, direct,  # d = 1: a stride of 1 may be specialised
                           {"SELF_MASK": True, "stride_y": 1, **tile(1)[0]}, tile(1)[1]),
        "direct-fp32-d3": (block_min.direct_kernel, direct, {"SELF_MASK": True, **tile(3)[0]},
                           tile(3)[1]),
        "window-fp16": (window.window_kernel,
                        gemm_types("fp16", thresh_ptr="*fp32", cand_ptr="*i64", count_ptr="*i32"),
                        dict(gemm, SELF_MASK=True, CENTER=False, WINDOW=window.WINDOW,
                             BLOCK_K=window.block_k(False)),
                        block_min.gemm_warps(False)),
        "tri-fp32": (pairs.tri_kernel, {"x_ptr": "*fp32", "mu_ptr": "*fp32", "xn_ptr": "*fp32",
                                        "keys_ptr": "*i64"},
                     {"CENTER": True, "PRECISION": "ieee", "BLOCK": pairs.BLOCK,
                      "BLOCK_K": block_min.BLOCK_K}, block_min.gemm_warps(True)),
        "tri-fp16": (pairs.tri_kernel, {"x_ptr": "*fp16", "mu_ptr": "*fp32", "xn_ptr": "*fp32",
                                        "keys_ptr": "*i64"},  # h_min's GPU target: 1M x 768 fp16
                     {"CENTER": False, "PRECISION": "ieee", "BLOCK": pairs.BLOCK,
                      "BLOCK_K": block_min.BLOCK_K}, block_min.gemm_warps(False)),
        "batched-d3-cap": (batched.fps_batched_kernel, {"x_ptr": "*fp32", **batched_types}, *batch(3)),
        "batched-bf16-d16-cap": (batched.fps_batched_kernel, {"x_ptr": "*bf16", **batched_types},
                                 *batch(16)),
        **{f"cloud-{dt}-d{d}-cap": (batched.cloud_kernel, {"x_ptr": f"*{dt}", **batched_types},
                                    {"D": d, "BLOCK_P": p}, batched.cloud_warps(p, d))
           for dt, d, p in (("fp32", 3, 4096), ("bf16", 8, 2048), ("fp16", 1, 8192))},
        "batched-stream-d3": (batched.fps_batched_stream_kernel,
                              {"x_ptr": "*fp32", "mind_ptr": "*fp32", **batched_types}, *batch(3)),
        "batched-stream-bf16-d16": (batched.fps_batched_stream_kernel,
                                    {"x_ptr": "*bf16", "mind_ptr": "*fp32", **batched_types},
                                    *batch(16)),
    }
    loop = {"low_ptr": "*fp32", "h_ptr": "*fp32", "hidx_ptr": "*i64", "own_ptr": "*i64",
            "list_ptr": "*i64", "keys_ptr": "*i64", "count_ptr": "*i64",
            "TAU_KEY": "i64"}
    for dt, d in (("fp32", 1024), ("bf16", 1024), ("bf16", 33)):  # step's tile and warps
        tile_d, warps_d = tile(d)
        table[f"head-tiled-loop-{dt}-d{d}"] = (head_tiled.pick_loop_kernel, {"xh_ptr": f"*{dt}", **loop},
                                               dict(tile_d, BLOCK=head_tiled.BLOCK, STAGES=head_tiled.STAGES),
                                               warps_d)
        table[f"head-tiled-direct-layout-{dt}-d{d}"] = ("layout", f"head-tiled-loop-{dt}-d{d}",
                                                        f"step-{dt}-d{d}", None)
    lower = {"mu_ptr": "*fp32", "n_ptr": "*fp32", "pairs_ptr": "*i32", "low_ptr": "*fp32",
             "coef": "fp32"}
    for dt, center, precision in (("fp32", True, "tf32x3"), ("fp16", False, "ieee"), ("bf16", False, "ieee"),
                                  ("fp32-tf32", True, "tf32")):
        table[f"head-tiled-lower-{dt}"] = (
            head_tiled.lower_kernel, {"x_ptr": f"*{dt[:4]}", **lower},
            dict(CENTER=center, PRECISION=precision, BLOCK_M=block_min.BLOCK_M, BLOCK_K=block_min.BLOCK_K),
            block_min.gemm_warps(center))

    def bucket_types(dt, **more):
        return {"x_ptr": f"*{dt}", "xs_ptr": f"*{dt}", "ids_ptr": "*i64", "mind_ptr": "*fp32",
                "bkey_ptr": "*i64", "lo_ptr": "*fp32", "hi_ptr": "*fp32", "ckey_ptr": "*i64",
                "clo_ptr": "*fp32", "chi_ptr": "*fp32", **more}

    for dt, d in (("fp32", 3), ("bf16", 8)):
        consts, warps = bucket._shape(d)
        table[f"bucket-step-{dt}-d{d}"] = (bucket.bucket_step_kernel, bucket_types(dt, **ring),
                                           consts, warps)
        table[f"bucket-batched-{dt}-d{d}"] = (
            bucket.bucket_batched_kernel,
            bucket_types(dt, row0_ptr="*i64", nch_ptr="*i64", k_ptr="*i64", start_ptr="*i64",
                         idx_ptr="*i64", dist_ptr="*fp32", FLOOR="fp32"), consts, warps)
    for dt in ("fp32", "bf16"):
        for d in (3, 33, 1024):
            table[f"step-{dt}-d{d}"] = (step.step_kernel, {"x_ptr": f"*{dt}", **ring}, *tile(d))
    return table


CASE_NAMES = ["step-fp32-d3", "step-fp32-d33", "step-fp32-d1024", "step-bf16-d3", "step-bf16-d33",
              "step-bf16-d1024", "head", "gemm-fp32", "gemm-bf16", "certify", "certify-fp32-d3",
              "direct-stride1", "direct-fp32-d3", "window-fp16", "window-fp32", "tri-fp32", "tri-fp16", "batched-d3-cap",
              "batched-bf16-d16-cap", "batched-stream-d3", "batched-stream-bf16-d16",
              "cloud-fp32-d3-cap", "cloud-bf16-d8-cap", "cloud-fp16-d1-cap",
              "head-tiled-loop-fp32-d1024", "head-tiled-loop-bf16-d1024", "head-tiled-loop-bf16-d33",
              "head-tiled-direct-layout-fp32-d1024", "head-tiled-direct-layout-bf16-d1024",
              "head-tiled-direct-layout-bf16-d33",
              "head-tiled-lower-fp32", "head-tiled-lower-fp16", "head-tiled-lower-bf16",
              "head-tiled-lower-fp32-tf32",
              "bucket-step-fp32-d3", "bucket-step-bf16-d8", "bucket-batched-fp32-d3",
              "bucket-batched-bf16-d8"]


# Kernels whose threads hand data to each other through global memory from one pick to
# the next: the CTA barriers (tl.debug_barrier) that order it. The interpreter runs a
# program element by element and cannot miss one; a GPU can. (Triton's own barriers
# guard shared memory only, and are added after the TTGIR this counts.)
BARRIERS = {"batched-stream": 1, "head-tiled-loop": 2, "bucket-batched": 1}
# Kernels whose speed rests on several programs sharing an SM: cloud_kernel at 4096 x 3 and
# 2048 x 8 (256 clouds on 132 SMs in one wave, where the [4096, 4] tile at 127 registers and
# 16 warps took two). At 8192 x 1 (16 warps) Triton 3.6 gives 64 registers, 3.9 gives 76: one.
PROGRAMS_PER_SM = {"cloud-fp32-d3": 2, "cloud-bf16-d8": 2}

LAYOUT_NAMES = ["bucket-tile-layout-fp32", "bucket-tile-layout-bf16", "specialised-layout-fp32",
                "specialised-layout-bf16"]


def tile_layout(compiled, block_n: int, block_d: int) -> str:
    """The layout of the [block_n, block_d] fp32 tile that a distance's ``tl.sum`` reduces.

    It fixes the summation order (lanes, registers, fma contraction) of every
    distance, so two kernels with the same one compute the same fp32 values.
    """
    import re
    g = compiled.asm["ttgir"]
    defs = dict(re.findall(r"^(#\w+) = (#ttg\.\w+<.*>)$", g, re.M))
    found = set(re.findall(rf": \(tensor<{block_n}x{block_d}xf32, (#\w+)>\) -> tensor<{block_n}xf32", g))
    if len(found) != 1:
        raise AssertionError(f"expected one {block_n}x{block_d} distance reduction; found {sorted(found)}")
    return defs[found.pop()]


def check_tile_layouts(dt: str) -> str:
    """The bucket kernels sum a distance in the streaming step's order (bit-identical picks), d = 1 .. 8."""
    from hminsel.triton import bucket, step
    ring = {"mind_ptr": "*fp32", "ring_ptr": "*i64", "base_ptr": "*i64"}
    common = {"x_ptr": f"*{dt}", "xs_ptr": f"*{dt}", "ids_ptr": "*i64", "mind_ptr": "*fp32",
              "bkey_ptr": "*i64", "lo_ptr": "*fp32", "hi_ptr": "*fp32", "ckey_ptr": "*i64",
              "clo_ptr": "*fp32", "chi_ptr": "*fp32"}
    batch = {"row0_ptr": "*i64", "nch_ptr": "*i64", "k_ptr": "*i64", "start_ptr": "*i64",
             "idx_ptr": "*i64", "dist_ptr": "*fp32", "FLOOR": "fp32"}
    for d in (1, 3, 4, 5, 8):
        consts, warps = bucket._shape(d)
        shape = (consts["BLOCK_N"], consts["BLOCK_D"])
        want = tile_layout(compile_kernel(step.step_kernel, {"x_ptr": f"*{dt}", **ring},
                                          {"BLOCK_N": shape[0], "BLOCK_D": shape[1]}, warps), *shape)
        for fn, types in ((bucket.bucket_step_kernel, {**common, **ring}),
                          (bucket.bucket_batched_kernel, {**common, **batch})):
            got = tile_layout(compile_kernel(fn, types, consts, warps), *shape)
            if got != want:
                raise AssertionError(f"d = {d}: {fn.__name__} sums in {got}, the step in {want}")
    return "the step's tile layout at d = 1, 3, 4, 5, 8"


def check_specialised_layouts(dt: str) -> str:
    """Every kernel whose direct values must equal step's sums in step's order as the JIT compiles them.

    The cases above compile with no divisibility facts. On a GPU the JIT knows
    that the (contiguous, 16-byte aligned: ``_device.prepare``) tensors are
    aligned and that D and the row strides are multiples of 16 when d is; the
    loads then vectorise and the row-sum layout changes (4 fp32 a thread at
    d = 1024). It must change alike in step, the head step, the tiled head's
    list pass, certify (the refresh and windows) and the direct refresh:
    d = 3, 16, 100 and 1024. (At d = 1 a stride of 1 is a constexpr and step's
    rows are contiguous, so its layout differs from the kernels that gather
    rows; harmless: one non-zero square and exact zeros sum alike in any order.)
    """
    from hminsel.triton import block_min, head, head_tiled, step
    from hminsel.triton.direct import blocks
    ring = {"mind_ptr": "*fp32", "ring_ptr": "*i64", "base_ptr": "*i64"}
    kernels = {
        "head": (head.head_step_kernel, {"xh_ptr": f"*{dt}", "h_ptr": "*fp32", "hidx_ptr": "*i64",
                                         "ring_ptr": "*i64", "base_ptr": "*i64", "TAU_KEY": "i64"}, {}),
        "head-tiled": (head_tiled.pick_loop_kernel, {
            "xh_ptr": f"*{dt}", "low_ptr": "*fp32", "h_ptr": "*fp32", "hidx_ptr": "*i64", "own_ptr": "*i64",
            "list_ptr": "*i64", "keys_ptr": "*i64", "count_ptr": "*i64",
            "TAU_KEY": "i64"}, {"BLOCK": head_tiled.BLOCK, "STAGES": head_tiled.STAGES}),
        "certify": (block_min.certify_kernel, {
            "x_ptr": f"*{dt}", "y_ptr": f"*{dt}", "rows_ptr": "*i64", "best_ptr": "*fp32",
            "second_ptr": "*fp32", "bidx_ptr": "*i64", "xn_ptr": "*fp32", "yn_max_ptr": "*fp32",
            "coef": "fp32", "value_ptr": "*fp32", "index_ptr": "*i64", "sure_ptr": "*i8"}, {}),
        "direct": (block_min.direct_kernel, {"x_ptr": f"*{dt}", "y_ptr": f"*{dt}", "rows_ptr": "*i64",
                                             "value_ptr": "*fp32", "index_ptr": "*i64"},
                   {"SELF_MASK": True}),
    }
    for d in (3, 16, 100, 1024):  # 100: the halved tile of d not a multiple of 16
        block_n, block_d, warps = blocks(d)
        tile = {"BLOCK_N": block_n, "BLOCK_D": block_d}
        div = ("D", "stride_x", "stride_y") if d % 16 == 0 else ()
        want = direct_layouts(compile_kernel(step.step_kernel, {"x_ptr": f"*{dt}", **ring}, tile, warps, div))
        if len(want) != 1:
            raise AssertionError(f"d = {d}: step has {len(want)} row sums: {want}")
        for name, (fn, types, consts) in kernels.items():
            got = direct_layouts(compile_kernel(fn, types, {**tile, **consts}, warps, div))
            if set(got) != set(want):
                raise AssertionError(f"d = {d}: {name} sums in {got}, step in {want}")
    return "step's row-sum layout under the JIT's specialisation at d = 3, 16, 100, 1024"


def compile_all() -> dict:
    """Compile every case once, in a child process; ``{case: "ok" or the error}``."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, __file__], capture_output=True, text=True, timeout=900,
                          env=env)
    if proc.returncode == SKIP:
        pytest.skip(proc.stdout.strip().splitlines()[-1])
    lines = [line.split(" ", 2) for line in proc.stdout.splitlines() if line.startswith(("ok ", "FAIL "))]
    out = {words[1]: "ok" if words[0] == "ok" else words[2] for words in lines}
    print("\n".join(line for line in proc.stdout.splitlines() if line.startswith(("ok ", "FAIL "))))
    return out if out else {"?": (proc.stdout + proc.stderr)[-4000:]}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """``compile_all()``, once a run: under pytest-xdist the workers that get these cases share
    one child's results through a file (else each compiled everything: 90 s of a core each)."""
    pytest.importorskip("triton", reason="triton is not installed (pip install triton)")
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        return compile_all()
    import fcntl
    import json
    shared = tmp_path_factory.getbasetemp().parent / f"triton-compile-{run}.json"
    with open(f"{shared}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the others wait for the first worker's child
        if shared.exists():
            return json.loads(shared.read_text())
        out = compile_all()
        shared.write_text(json.dumps(out))
        return out


@pytest.mark.parametrize("case", CASE_NAMES + LAYOUT_NAMES)
def test_kernel_compiles_for_sm90_without_spills(report, case):
    """Compiles, and ptxas spills no register: the launchers' block shapes fit the register file."""
    assert report.get(case) == "ok", report.get(case, report)


def direct_layouts(compiled) -> list[str]:
    """The operand type and layout of each row-sum (axis-1 fp32 ``tt.reduce``) in the TTGIR.

    ``direct.sqdist_tile``'s sum is the only one in the kernels compared: the
    same layout means the same threads add the same elements in the same order.
    """
    import re
    ir = compiled.asm["ttgir"]
    defs = dict(re.findall(r"^(#\w+) = (#ttg\.\w+<.*>)$", ir, re.M))
    found = re.findall(r'"tt\.reduce"\(%[\w#]+\) <\{axis = 1 : i32\}>.*?\}\) : '
                       r'\((tensor<\d+x\d+xf32), (#\w+)>\)', ir, re.S)
    return [f"{shape} {defs.get(enc, enc)}" for shape, enc in found]


def same_direct_layout(table, ours: str, step: str) -> str:
    """Compile both kernels; "" when the direct tile's row-sum layout matches step's, else why not."""
    got = {}
    for name in (ours, step):
        fn, types, consts, warps = table[name]
        got[name] = direct_layouts(compile_kernel(fn, types, consts, warps))
    if len(got[step]) != 1 or set(got[ours]) != set(got[step]):
        return f"row-sum layouts differ: {ours} {got[ours]} vs {step} {got[step]}"
    return ""


def jit_facts(name: str, fn) -> tuple:
    """The integer arguments the JIT would see divisible by 16 for case ``name`` (pointers are
    16-byte aligned from torch's allocator): D and the strides, unless the case's d (``-d3``)
    is not a multiple of 16."""
    d = re.search(r"-d(\d+)", name)
    if d is not None and int(d.group(1)) % 16:
        return ()
    return tuple(a for a in fn.arg_names if a == "D" or a.startswith("stride"))


def test_every_launch_names_its_fusion():
    """Every launch of a kernel that computes direct-form values passes ``**EXACT_SUMS``, every
    other launch ``**GEMM_FUSION`` (Triton 3.9 warns where a launch leaves it to the default,
    which 3.10 turns off), and every launched kernel that sums squared differences is one of
    ``DIRECT_KERNELS``."""
    import ast
    import pathlib
    launches, summing = {}, set()
    for path in sorted(pathlib.Path(__file__).parents[1].joinpath("hminsel", "triton").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and any(
                    "jit" in ast.unparse(dec) for dec in node.decorator_list):
                body = ast.unparse(node)
                if any(word in body for word in ("sqdist_tile(", "fold_chunk(", "diff * diff")):
                    summing.add(node.name)
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Subscript)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id.endswith("_kernel")):
                named = [ast.unparse(kw.value) for kw in node.keywords if kw.arg is None]
                launches.setdefault(node.func.value.id, []).append((f"{path.name}:{node.lineno}", named))
    assert set(DIRECT_KERNELS) <= set(launches), sorted(set(DIRECT_KERNELS) - set(launches))
    unlisted = summing & set(launches) - set(DIRECT_KERNELS)
    assert not unlisted, f"kernels summing squared differences, not in DIRECT_KERNELS: {sorted(unlisted)}"
    wrong = [f"{where} {name}" for name, sites in launches.items() for where, named in sites
             if ("EXACT_SUMS" if name in DIRECT_KERNELS else "GEMM_FUSION") not in named]
    assert not wrong, f"launched without its fusion options (**EXACT_SUMS / **GEMM_FUSION): {wrong}"


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
    for name in names or CASE_NAMES + LAYOUT_NAMES:
        if name in LAYOUT_NAMES:
            try:
                check = check_specialised_layouts if name.startswith("specialised") else check_tile_layouts
                print(f"ok {name} {check(name.rsplit('-', 1)[1])}", flush=True)
            except Exception as exc:
                failed += 1
                print(f"FAIL {name} {type(exc).__name__}: {str(exc)[:300]}", flush=True)
            continue
        fn, types, consts, warps = table[name]
        try:
            if fn == "layout":  # the tiled head's direct values must be summed as step sums them
                why = same_direct_layout(table, types, consts)
                assert not why, why
                print(f"ok {name} same row-sum layout as {consts}", flush=True)
                continue
            report = []
            for facts in (None, jit_facts(name, fn)):  # as written, and as the JIT specialises it
                compiled = compile_kernel(fn, types, consts, warps, div16=facts)
                assert len(compiled.asm.get("cubin", b"")) > 0, "no cubin"
                barriers = len(re.findall(r"\b(?:ttg|gpu)\.barrier\b", compiled.asm["ttgir"]))
                want = next((n for prefix, n in BARRIERS.items() if name.startswith(prefix)), 0)
                assert barriers >= want, f"{barriers} CTA barriers in the TTGIR, {want} wanted (tl.debug_barrier)"
                stack, regs = resource_usage(compiled)
                seen = "aligned" if facts is not None else "plain"
                if fn.__name__ in DIRECT_KERNELS:  # rows summed alike on every lane (direct.py)
                    fused = fused_multiply_adds(compiled)
                    assert fused <= 0, f"{fused} FFMA in the SASS ({seen}) of a direct-form kernel"
                assert stack == 0, (f"{stack} bytes of stack ({seen}): register spills ({regs} "
                                    f"registers, {warps} warps)")
                shared = compiled.metadata.shared
                assert shared <= SM90_SHARED_OPTIN, (f"{shared} bytes of shared memory ({seen}); an "
                                                     f"sm_90 block may have {SM90_SHARED_OPTIN}")
                assert regs * warps * 32 <= SM90_REGISTERS, (f"{regs} registers x {warps * 32} threads "
                                                            f"> {SM90_REGISTERS} a block ({seen})")
                per_sm = next((n for prefix, n in PROGRAMS_PER_SM.items() if name.startswith(prefix)), 1)
                assert -(-regs // 8) * 8 * warps * 32 * per_sm <= SM90_REGISTERS, (  # 8 a thread at a time
                    f"{regs} registers x {warps * 32} threads: fewer than {per_sm} programs an SM ({seen})")
                report.append(f"{seen}: registers={regs} shared={shared}")
            print(f"ok {name} spills=0 warps={warps} " + ", ".join(report), flush=True)
        except TypeError as exc:  # ASTSource's arguments moved between triton releases
            print(f"this triton's ASTSource takes other arguments ({exc})")
            return SKIP
        except Exception as exc:  # a compile error: report it, go on with the others
            failed += 1
            print(f"FAIL {name} {type(exc).__name__}: {' | '.join(str(exc).splitlines()[:8])}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
