//! The classifier demo: a bidirectional-Latte classifier in flash labels
//! messages stored in flash, in constant memory ([`Classifier::classify_stream`]:
//! each message is read once per layer from flash), and reports what a byte
//! cost.
//!
//! Output (defmt, one line each; the `class:` lines are what CI compares with
//! `boards/expected/<model file>.txt`, written from `latte classify` on a
//! host):
//!
//! ```text
//! model: latte-spam-micro-q8_0.gguf, 140000 bytes, kernels arm-dsp, 2 classes
//! ram: summaries 5760 + work 29000 bytes for chunks of 16 bytes, whatever the message length
//! class: ham-0001.eml ham
//! cost: ham-0001.eml 1024 of 3120 bytes read, 41000000 instructions, 40000 per byte
//! ```

use latte_core::classifier::{Classifier, SliceSource};
use latte_core::Error;

use crate::Counter;

/// One message built into the firmware: its file name and bytes.
pub type Message = (&'static str, &'static [u8]);

/// Loads the classifier, then classifies every message with the model's
/// training length as the limit (as `latte classify` does by default),
/// logging its label and cost.
pub fn run<C: Counter>(
    name: &str,
    model: &[u8],
    messages: &[Message],
    summaries: &mut [f32],
    work: &mut [f32],
    chunk: usize,
    counter: &mut C,
) -> Result<(), Error> {
    let bytes = model.len();
    let model = Classifier::from_gguf(model)?;
    defmt::info!(
        "model: {=str}, {=usize} bytes, kernels {=str}, {=usize} classes",
        name,
        bytes,
        model.kernels().path().name(),
        model.config().n_classes
    );
    defmt::info!(
        "ram: summaries {=usize} + work {=usize} bytes for chunks of {=usize} bytes, whatever the message length",
        model.summaries_len() * 4,
        model.work_len(chunk) * 4,
        chunk
    );
    let limit = model.config().context_length as u64;
    let mut logits = [0f32; 16];
    let classes = model.config().n_classes;
    if classes > logits.len() {
        return Err(Error::BufferLength {
            what: "logits (this demo prints up to 16 classes)",
            need: classes,
            got: logits.len(),
        });
    }
    for &(file, text) in messages {
        let t0 = counter.now();
        let r = model.classify_stream(
            &mut SliceSource::new(text),
            Some(limit),
            summaries,
            work,
            chunk,
            &mut logits[..classes],
        )?;
        let spent = counter.now() - t0;
        // The class's name, or its number when the file has no names (as
        // `latte classify` prints it).
        match model.label(r.class) {
            Some(label) => defmt::info!("class: {=str} {=str}", file, label),
            None => defmt::info!("class: {=str} {=usize}", file, r.class),
        }
        defmt::info!(
            "cost: {=str} {=u64} of {=usize} bytes read, {=u64} {=str}, {=u64} per byte",
            file,
            r.tokens,
            text.len(),
            spent,
            C::UNIT,
            spent / r.tokens.max(1)
        );
    }
    Ok(())
}
