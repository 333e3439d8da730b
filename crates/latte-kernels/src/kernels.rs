//! The kernel table: one set of function pointers per instruction-set path,
//! chosen once.

use core::fmt;

use half::f16;

use crate::block::{BlockQ4_0, BlockQ8_0, QK};
use crate::scalar::{self, RingRows};

type DotF32 = unsafe fn(&[f32], &[f32]) -> f32;
type DotF16 = unsafe fn(&[f16], &[f32]) -> f32;
type MatF32 = unsafe fn(&[f32], usize, &[f32], &mut [f32]);
type MatF16 = unsafe fn(&[f16], usize, &[f32], &mut [f32]);
type QuantQ8 = unsafe fn(&[f32], &mut [BlockQ8_0]);
type MapF32 = unsafe fn(&mut [f32]);
type LatentUpd = unsafe fn(&mut [f32], &[f32], &[f32], &[f32], &[f32], &mut [f32]);
type WinDots = unsafe fn(&[f32], RingRows<'_>, usize, &mut [f32]);
type WinSums = unsafe fn(&mut [f32], &[f32], RingRows<'_>, usize);

/// An instruction-set path of the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelPath {
    /// Portable Rust, the specification (every target).
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX2 + FMA + F16C + AVX-VNNI (256-bit `vpdpbusd`).
    AvxVnni,
    /// x86-64 AVX2 + FMA + F16C + AVX-512 F/BW/VL + AVX512-VNNI (512-bit
    /// `vpdpbusd`).
    Avx512Vnni,
    /// AArch64 Advanced SIMD (NEON).
    Neon,
    /// AArch64 NEON with the dot-product extension (`sdot`).
    NeonDotprod,
    /// Arm Cortex-M DSP extension (`SMLAD`, `SXTB16`): Cortex-M4/M7/M33/M55.
    ArmDsp,
    /// Arm Helium (M-profile Vector Extension): Cortex-M55/M85.
    ArmHelium,
}

impl KernelPath {
    /// Every path, fastest last.
    pub const ALL: [KernelPath; 8] = [
        KernelPath::Scalar,
        KernelPath::Avx2,
        KernelPath::AvxVnni,
        KernelPath::Avx512Vnni,
        KernelPath::Neon,
        KernelPath::NeonDotprod,
        KernelPath::ArmDsp,
        KernelPath::ArmHelium,
    ];

    /// Short lowercase name: `scalar`, `avx2`, `avxvnni`, `avx512vnni`, `neon`, `neon-dotprod`.
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Scalar => "scalar",
            KernelPath::Avx2 => "avx2",
            KernelPath::AvxVnni => "avxvnni",
            KernelPath::Avx512Vnni => "avx512vnni",
            KernelPath::Neon => "neon",
            KernelPath::NeonDotprod => "neon-dotprod",
            KernelPath::ArmDsp => "arm-dsp",
            KernelPath::ArmHelium => "arm-helium",
        }
    }

    /// The path's kernels, `None` when this CPU (or, without the `std`
    /// feature, this compilation target) lacks it.
    pub fn kernels(self) -> Option<Kernels> {
        match self {
            KernelPath::Scalar => Some(Kernels::scalar()),
            KernelPath::Avx2 => Kernels::avx2(),
            KernelPath::AvxVnni => Kernels::avx_vnni(),
            KernelPath::Avx512Vnni => Kernels::avx512_vnni(),
            KernelPath::Neon => Kernels::neon(),
            KernelPath::NeonDotprod => Kernels::neon_dotprod(),
            KernelPath::ArmDsp => Kernels::arm_dsp(),
            KernelPath::ArmHelium => Kernels::arm_helium(),
        }
    }
}

impl fmt::Display for KernelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Function pointers for one [`KernelPath`].
///
/// A `Kernels` value can only be obtained from the constructors below, which
/// return a SIMD path only after checking that the CPU supports it (at run
/// time with the `std` feature, from the compile-time target features
/// without it). That check is what makes calling the pointers sound.
///
/// Results: the quantized dot products and matrix-vector products, and the
/// elementwise `exp`, `tanh` and GELU, of every path are bit-identical to
/// [`Kernels::scalar`] (see [`crate::scalar`] for the accumulation order and
/// the math); the `f32`/`f16` products agree within rounding.
#[derive(Clone, Copy)]
pub struct Kernels {
    path: KernelPath,
    dot_f32: DotF32,
    dot_f16: DotF16,
    matvec_f32: MatF32,
    matvec_f16: MatF16,
    quantize_q8_0: QuantQ8,
    exp: MapF32,
    tanh: MapF32,
    gelu_tanh: MapF32,
    latent_update: LatentUpd,
    window_dots: WinDots,
    window_sums: WinSums,
}

impl fmt::Debug for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernels").field("path", &self.path).finish()
    }
}

impl PartialEq for Kernels {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for Kernels {}

/// CPU support checks: run time with `std`, compile time without.
mod detect {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    pub fn avx2() -> bool {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    }

    #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
    pub fn avx2() -> bool {
        cfg!(all(
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        ))
    }

    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    pub fn avx_vnni() -> bool {
        avx2() && std::is_x86_feature_detected!("avxvnni")
    }

    #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
    pub fn avx_vnni() -> bool {
        avx2() && cfg!(target_feature = "avxvnni")
    }

    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    pub fn avx512_vnni() -> bool {
        avx2()
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
    }

    #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
    pub fn avx512_vnni() -> bool {
        avx2()
            && cfg!(all(
                target_feature = "avx512f",
                target_feature = "avx512bw",
                target_feature = "avx512vl",
                target_feature = "avx512vnni"
            ))
    }

    #[cfg(all(target_arch = "aarch64", feature = "std"))]
    pub fn neon() -> bool {
        std::arch::is_aarch64_feature_detected!("neon")
    }

    #[cfg(all(target_arch = "aarch64", not(feature = "std")))]
    pub fn neon() -> bool {
        cfg!(target_feature = "neon")
    }

    #[cfg(all(target_arch = "aarch64", feature = "std"))]
    pub fn dotprod() -> bool {
        neon() && std::arch::is_aarch64_feature_detected!("dotprod")
    }

    #[cfg(all(target_arch = "aarch64", not(feature = "std")))]
    pub fn dotprod() -> bool {
        neon() && cfg!(target_feature = "dotprod")
    }
}

impl Kernels {
    /// The portable scalar kernels (the specification); always available.
    pub fn scalar() -> Kernels {
        Kernels {
            path: KernelPath::Scalar,
            dot_f32: scalar::dot_f32,
            dot_f16: scalar::dot_f16,
            matvec_f32: scalar::matvec_f32,
            matvec_f16: scalar::matvec_f16,
            quantize_q8_0: scalar::quantize_q8_0,
            exp: scalar::exp_inplace,
            tanh: scalar::tanh_inplace,
            gelu_tanh: scalar::gelu_tanh_inplace,
            latent_update: scalar::latent_update,
            window_dots: scalar::window_dots,
            window_sums: scalar::window_sums,
        }
    }

    /// AVX2 + FMA + F16C kernels, `None` unless this CPU has all three
    /// (always `None` off x86-64).
    pub fn avx2() -> Option<Kernels> {
        #[cfg(target_arch = "x86_64")]
        if detect::avx2() {
            use crate::x86_avx2 as k;
            return Some(Kernels {
                path: KernelPath::Avx2,
                dot_f32: k::dot_f32,
                dot_f16: k::dot_f16,
                matvec_f32: k::matvec_f32,
                matvec_f16: k::matvec_f16,
                quantize_q8_0: k::quantize_q8_0,
                exp: k::exp_inplace,
                tanh: k::tanh_inplace,
                gelu_tanh: k::gelu_tanh_inplace,
                latent_update: k::latent_update,
                window_dots: k::window_dots,
                window_sums: k::window_sums,
            });
        }
        None
    }

    /// AVX-VNNI kernels (AVX2 + FMA + F16C + AVX-VNNI), `None` unless this
    /// CPU has them. The float kernels are the AVX2 ones.
    pub fn avx_vnni() -> Option<Kernels> {
        #[cfg(target_arch = "x86_64")]
        if detect::avx_vnni() {
            // AVX-VNNI implies AVX2 (`detect::avx_vnni` checks both).
            return Kernels::avx2().map(|base| Kernels {
                path: KernelPath::AvxVnni,
                ..base
            });
        }
        None
    }

    /// AVX-512 kernels (AVX2 + FMA + F16C + AVX512F/BW/VL + AVX512-VNNI),
    /// `None` unless this CPU has them. The `f32`/`f16` products are the
    /// AVX2 ones.
    pub fn avx512_vnni() -> Option<Kernels> {
        #[cfg(target_arch = "x86_64")]
        if detect::avx512_vnni() {
            use crate::x86_avx512 as v;
            // `detect::avx512_vnni` checks AVX2 too.
            return Kernels::avx2().map(|base| Kernels {
                path: KernelPath::Avx512Vnni,
                quantize_q8_0: v::quantize_q8_0,
                exp: v::exp_inplace,
                tanh: v::tanh_inplace,
                gelu_tanh: v::gelu_tanh_inplace,
                latent_update: v::latent_update,
                ..base
            });
        }
        None
    }

    /// NEON kernels, `None` unless this CPU has Advanced SIMD (always `None`
    /// off AArch64).
    pub fn neon() -> Option<Kernels> {
        #[cfg(target_arch = "aarch64")]
        if detect::neon() {
            use crate::aarch64_neon as k;
            return Some(Kernels {
                path: KernelPath::Neon,
                dot_f32: k::dot_f32,
                dot_f16: k::dot_f16,
                matvec_f32: k::matvec_f32,
                matvec_f16: k::matvec_f16,
                quantize_q8_0: k::quantize_q8_0,
                exp: k::exp_inplace,
                tanh: k::tanh_inplace,
                gelu_tanh: k::gelu_tanh_inplace,
                latent_update: crate::scalar::latent_update,
                window_dots: crate::scalar::window_dots,
                window_sums: crate::scalar::window_sums,
            });
        }
        None
    }

    /// NEON kernels whose integer dot products use `sdot` (the dot-product
    /// extension), `None` unless this CPU has it.
    pub fn neon_dotprod() -> Option<Kernels> {
        #[cfg(target_arch = "aarch64")]
        if detect::dotprod() {
            // The dot-product extension implies NEON (`detect::dotprod` checks both).
            return Kernels::neon().map(|base| Kernels {
                path: KernelPath::NeonDotprod,
                ..base
            });
        }
        None
    }

    /// Cortex-M DSP-extension kernels for the quantized dot products and the
    /// `f16` products (both bit-identical to the scalar ones; the other float
    /// kernels are the scalar ones), `None` unless the compilation
    /// target has the extension (there is no run-time detection on a
    /// microcontroller: `build.rs` derives it from the target, see
    /// `crate::arm_dsp`).
    pub fn arm_dsp() -> Option<Kernels> {
        #[cfg(latte_arm_dsp)]
        {
            #[allow(unused_mut)]
            let mut k = Kernels {
                path: KernelPath::ArmDsp,
                dot_f16: crate::arm_dsp::dot_f16,
                matvec_f16: crate::arm_dsp::matvec_f16,
                ..Kernels::scalar()
            };
            // With an FPU (`eabihf`), the window's per-row steps are `VMLA`
            // loops.
            #[cfg(latte_arm_fpu)]
            {
                k.window_dots = crate::arm_dsp::window_dots;
                k.window_sums = crate::arm_dsp::window_sums;
            }
            return Some(k);
        }
        #[allow(unreachable_code)]
        None
    }

    /// Helium (MVE) kernels for the quantized dot products (the float
    /// kernels are the scalar ones), `None` unless the compilation target
    /// has MVE (`-C target-feature=+mve` on a `thumbv8m.main` target; see
    /// `crate::arm_helium`).
    pub fn arm_helium() -> Option<Kernels> {
        #[cfg(latte_arm_mve)]
        {
            return Some(Kernels {
                path: KernelPath::ArmHelium,
                ..Kernels::scalar()
            });
        }
        #[allow(unreachable_code)]
        None
    }

    /// The fastest path this CPU supports (cheap: detection results are
    /// cached by `std`, or constant without it).
    pub fn best() -> Kernels {
        KernelPath::ALL
            .iter()
            .rev()
            .find_map(|p| p.kernels())
            .unwrap_or_else(Kernels::scalar)
    }

    /// The path called `name` ([`KernelPath::name`]) if this CPU supports
    /// it; for example to honour an environment variable in a tool.
    pub fn by_name(name: &str) -> Option<Kernels> {
        KernelPath::ALL
            .iter()
            .find(|p| p.name() == name)
            .and_then(|p| p.kernels())
    }

    /// Which path these are.
    pub fn path(&self) -> KernelPath {
        self.path
    }

    /// Dot product of `n` values (`n / 32` blocks) of `Q8_0` weights with
    /// `Q8_0` activations, ggml's `vec_dot_q8_0_q8_0`: [`Kernels::vec_dot`].
    pub fn vec_dot_q8_0_q8_0(&self, n: usize, w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
        self.vec_dot(n, w, x)
    }

    /// Like [`Kernels::vec_dot_q8_0_q8_0`] for `Q4_0` weights
    /// (ggml's `vec_dot_q4_0_q8_0`).
    pub fn vec_dot_q4_0_q8_0(&self, n: usize, w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
        self.vec_dot(n, w, x)
    }

    /// `f32` dot product of the common prefix of `a` and `b`.
    pub fn vec_dot_f32(&self, a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        // SAFETY: the constructor checked that this CPU supports the path.
        unsafe { (self.dot_f32)(&a[..n], &b[..n]) }
    }

    /// Dot product of `f16` weights and `f32` values (common prefix), in `f32`.
    pub fn vec_dot_f16_f32(&self, a: &[f16], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        // SAFETY: the constructor checked that this CPU supports the path.
        unsafe { (self.dot_f16)(&a[..n], &b[..n]) }
    }

    /// [`Kernels::matvec`] for a `Q8_0` matrix: `y[r] =
    /// vec_dot_q8_0_q8_0(cols, row r, x_q)`, the same lengths.
    pub fn matvec_q8_0(
        &self,
        w_rows: &[BlockQ8_0],
        rows: usize,
        cols: usize,
        x_q: &[BlockQ8_0],
        y: &mut [f32],
    ) {
        self.matvec(w_rows, rows, cols, x_q, y)
    }

    /// Like [`Kernels::matvec_q8_0`] for `Q4_0` weights.
    pub fn matvec_q4_0(
        &self,
        w_rows: &[BlockQ4_0],
        rows: usize,
        cols: usize,
        x_q: &[BlockQ8_0],
        y: &mut [f32],
    ) {
        self.matvec(w_rows, rows, cols, x_q, y)
    }

    /// `y[r] = vec_dot_f32(row r, x)` for a row-major `rows x cols` `f32`
    /// matrix; lengths as in [`Kernels::matvec_q8_0`] (`cols` values per row).
    pub fn matvec_f32(&self, w: &[f32], rows: usize, cols: usize, x: &[f32], y: &mut [f32]) {
        let Some((w, stride, x, y)) = mat_args(w, rows, cols, x, y) else {
            return;
        };
        // SAFETY: the constructor checked that this CPU supports the path;
        // `mat_args` guarantees `(y.len() - 1) * stride + x.len() <= w.len()`.
        unsafe { (self.matvec_f32)(w, stride, x, y) }
    }

    /// Like [`Kernels::matvec_f32`] for `f16` weights.
    pub fn matvec_f16(&self, w: &[f16], rows: usize, cols: usize, x: &[f32], y: &mut [f32]) {
        let Some((w, stride, x, y)) = mat_args(w, rows, cols, x, y) else {
            return;
        };
        // SAFETY: the constructor checked that this CPU supports the path;
        // `mat_args` guarantees `(y.len() - 1) * stride + x.len() <= w.len()`.
        unsafe { (self.matvec_f16)(w, stride, x, y) }
    }

    /// `x[i] = e^x[i]`: bit for bit [`crate::scalar::exp_f32`] on every
    /// path, for every input (at most 0.99 ulp from the exact value; see
    /// [`crate::scalar`], "Elementwise math").
    pub fn exp_inplace(&self, x: &mut [f32]) {
        // SAFETY: the constructor checked that this CPU supports the path.
        unsafe { (self.exp)(x) }
    }

    /// `x[i] = tanh x[i]`: bit for bit [`crate::scalar::tanh_f32`] on every
    /// path, for every input (at most 1.34 ulp from the exact value).
    pub fn tanh_inplace(&self, x: &mut [f32]) {
        // SAFETY: the constructor checked that this CPU supports the path.
        unsafe { (self.tanh)(x) }
    }

    /// `x[i] = gelu(x[i])`, tanh form: bit for bit
    /// [`crate::scalar::gelu_tanh_f32`] on every path, for every input.
    pub fn gelu_tanh_inplace(&self, x: &mut [f32]) {
        // SAFETY: the constructor checked that this CPU supports the path.
        unsafe { (self.gelu_tanh)(x) }
    }

    /// The window attention's scores before scaling: `out[i]` = the dot
    /// product of `q` with row `i` of `rows` (`q.len()` elements from `i *
    /// stride`), as eight interleaved partial sums added in order, for each
    /// row `i < out.len()` the slice holds (the rest of `out` is left as it
    /// is). Bit for bit [`crate::scalar::window_dots`] on every path.
    pub fn window_dots(&self, q: &[f32], rows: RingRows<'_>, stride: usize, out: &mut [f32]) {
        // SAFETY: the constructor checked that this CPU supports the path;
        // every path bounds its accesses by the slices' lengths.
        unsafe { (self.window_dots)(q, rows, stride, out) }
    }

    /// The window attention's weighted sum of values: `acc += p[i] * row
    /// i` (`acc.len()` elements from `i * stride`), row after row, for each
    /// row `i < p.len()` the slice holds. Bit for bit
    /// [`crate::scalar::window_sums`] on every path.
    pub fn window_sums(&self, acc: &mut [f32], p: &[f32], rows: RingRows<'_>, stride: usize) {
        // SAFETY: the constructor checked that this CPU supports the path;
        // every path bounds its accesses by the slices' lengths.
        unsafe { (self.window_sums)(acc, p, rows, stride) }
    }

    /// The Latte recurrence's update of a group of latents:
    /// `s_l = s_l * r[l] + a[l] * v`, then `y += w[l] * s_l`, latent after
    /// latent. Bit for bit [`crate::scalar::latent_update`] (which gives the
    /// lengths) on every path.
    pub fn latent_update(
        &self,
        s: &mut [f32],
        v: &[f32],
        r: &[f32],
        a: &[f32],
        w: &[f32],
        y: &mut [f32],
    ) {
        // SAFETY: the constructor checked that this CPU supports the path;
        // every path bounds its accesses by the slices' lengths.
        unsafe { (self.latent_update)(s, v, r, a, w, y) }
    }

    /// Quantizes activations to `Q8_0`: bit for bit
    /// [`crate::quantize_row_q8_0`] (for finite inputs), vectorized.
    /// Writes `min(x.len() / 32, y.len())` blocks.
    pub fn quantize_q8_0(&self, x: &[f32], y: &mut [BlockQ8_0]) {
        let nb = (x.len() / QK).min(y.len());
        // SAFETY: the constructor checked that this CPU supports the path;
        // `x` holds exactly `32 * y.len()` values.
        unsafe { (self.quantize_q8_0)(&x[..nb * QK], &mut y[..nb]) }
    }
}

/// Trims matrix-vector arguments to what can be computed. Returns `None`
/// (after zeroing the computable outputs) when there is nothing to multiply,
/// otherwise `(w, stride, x, y)` with `y` non-empty, `x.len() <= stride` and
/// `(y.len() - 1) * stride + x.len() <= w.len()`.
#[allow(clippy::type_complexity)]
pub(crate) fn mat_args<'a, 'y, W, X>(
    w: &'a [W],
    rows: usize,
    stride: usize,
    x: &'a [X],
    y: &'y mut [f32],
) -> Option<(&'a [W], usize, &'a [X], &'y mut [f32])> {
    let mut rows = rows.min(y.len());
    if let Some(available) = w.len().checked_div(stride) {
        rows = rows.min(available);
    }
    let y = &mut y[..rows];
    let xn = stride.min(x.len());
    if rows == 0 {
        return None;
    }
    if xn == 0 {
        y.fill(0.0);
        return None;
    }
    Some((&w[..rows * stride], stride, &x[..xn], y))
}
