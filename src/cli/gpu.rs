//! Choosing the decoder for `--device`.

use exprans::files::TensorDecoder;
use exprans::Result;

use crate::Device;

/// The decoder for `--device`.
pub fn decoder_for(device: Device, _quiet: bool) -> Result<Box<dyn TensorDecoder>> {
    match device {
        Device::Cpu | Device::Auto => Ok(crate::cpu_decoder()),
        Device::Gpu => Err(exprans::Error::Gpu("not wired yet".into())),
    }
}

/// GPU decode benchmark of these tensors.
pub fn bench(
    _stored: &[exprans::archive::StoredTensor],
    _repeat: usize,
) -> Result<serde_json::Value> {
    Err(exprans::Error::Gpu("not wired yet".into()))
}
