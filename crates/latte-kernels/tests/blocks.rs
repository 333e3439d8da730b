//! Block layout and the checked casts from tensor bytes.

use latte_kernels::{
    blocks_as_bytes, cast_blocks_mut, cast_q4_0, cast_q8_0, Block, BlockQ4_0, BlockQ8_0, CastError,
};

#[test]
fn layout_is_ggml() {
    assert_eq!(core::mem::size_of::<BlockQ8_0>(), 34);
    assert_eq!(core::mem::size_of::<BlockQ4_0>(), 18);
    assert_eq!(core::mem::align_of::<BlockQ8_0>(), 2);
    assert_eq!(core::mem::align_of::<BlockQ4_0>(), 2);
    assert_eq!(BlockQ8_0::GGML_TYPE, 8);
    assert_eq!(BlockQ4_0::GGML_TYPE, 2);
    assert_eq!((BlockQ8_0::BYTES, BlockQ4_0::BYTES), (34, 18));
    // d first (little-endian f16), then the quants in value order.
    let b = BlockQ8_0 {
        d: 0x3C00,
        qs: core::array::from_fn(|j| j as i8 - 16),
    };
    let bytes = blocks_as_bytes(core::slice::from_ref(&b));
    assert_eq!(&bytes[..4], &[0x00, 0x3C, 0xF0, 0xF1]);
    let q = BlockQ4_0 {
        d: 0xB600,
        qs: core::array::from_fn(|j| j as u8 | 0xA0),
    };
    let bytes = blocks_as_bytes(core::slice::from_ref(&q));
    assert_eq!(&bytes[..4], &[0x00, 0xB6, 0xA0, 0xA1]);
    assert_eq!((q.quant(1), q.quant(17)), (1, 10));
    assert_eq!(q.scale(), -0.375);
    assert_eq!(b.scale(), 1.0);
}

/// 32-aligned storage, like a GGUF tensor in an aligned file buffer.
#[repr(C, align(32))]
struct Aligned([u8; 34 * 4 + 2]);

#[test]
fn casts_check_length_and_alignment() {
    let mut buf = Aligned([0; 34 * 4 + 2]);
    buf.0[34] = 0x00;
    buf.0[35] = 0x3C;
    buf.0[36] = 0x7F;
    let q8 = cast_q8_0(&buf.0[..34 * 4]).unwrap();
    assert_eq!(q8.len(), 4);
    assert_eq!((q8[1].d, q8[1].qs[0]), (0x3C00, 127));
    assert_eq!(cast_q4_0(&buf.0[..18 * 7]).unwrap().len(), 7);
    assert_eq!(cast_q8_0(&[]).unwrap().len(), 0);

    assert_eq!(
        cast_q8_0(&buf.0[..35]),
        Err(CastError::Length { len: 35, block: 34 })
    );
    assert_eq!(
        cast_q4_0(&buf.0[..17]),
        Err(CastError::Length { len: 17, block: 18 })
    );
    assert_eq!(
        cast_q8_0(&buf.0[1..35]),
        Err(CastError::Misaligned { align: 2 })
    );
    assert_eq!(
        cast_q4_0(&buf.0[1..19]),
        Err(CastError::Misaligned { align: 2 })
    );
    assert_eq!(
        cast_blocks_mut::<BlockQ4_0>(&mut buf.0[3..21]),
        Err(CastError::Misaligned { align: 2 })
    );
    let m = cast_blocks_mut::<BlockQ4_0>(&mut buf.0[2..38]).unwrap();
    m[0].d = 0x1234;
    assert_eq!(&buf.0[2..4], &[0x34, 0x12]);
    assert!(CastError::Misaligned { align: 2 }
        .to_string()
        .contains("aligned"));
}
