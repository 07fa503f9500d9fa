//! The GPU's tensor-level decode: stored checksum checked on the host before upload, coded
//! entries decoded by the kernels, decoded checksum checked on what the GPU wrote (read back in
//! the same submission). The same steps and messages as [`crate::CpuDecoder::decode_tensor`]
//! (`tensor::open_stored`, `tensor::check_decoded`).
//!
//! Work is recorded into a command encoder: the caller's own ([`GpuDecoder::record_tensors`],
//! then submit it with the rest of its work and [`PendingDecode::finish`]), or one of the
//! decoder's ([`GpuDecoder::decode_tensors_into`], [`GpuDecoder::decode_tensors`]).

use super::batch::{check_target, Batch, BatchError, Dest};
use super::decoder::{GpuDecoder, OutputTarget};
use super::sync;
use crate::archive::TensorIndex;
use crate::codec::CodedEntry;
use crate::tensor::{check_decoded, open_stored, Stored};
use crate::{Error, Result};

/// Decodes recorded by [`GpuDecoder::record_tensors`] into a caller's command encoder. Submit
/// the encoder, then await [`PendingDecode::finish`]: it checks every lane's end state and every
/// tensor's decoded checksum. Until it returns `Ok`, the targets hold unchecked bytes.
#[must_use = "the decoded bytes are unchecked until `finish` returns Ok"]
pub struct PendingDecode {
    device: wgpu::Device,
    /// The errors wgpu reported while recording (error scopes).
    recording: sync::Errors,
    /// The kernels' work, or `None` when every tensor was stored verbatim.
    batch: Option<Batch>,
    /// The targets' bytes, copied back for the decoded checksums.
    readback: Option<wgpu::Buffer>,
    /// Per tensor: its index record and where its bytes are in `readback`.
    checks: Vec<(TensorIndex, u64)>,
}

impl std::fmt::Debug for PendingDecode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingDecode")
            .field("tensors", &self.checks.len())
            .finish_non_exhaustive()
    }
}

impl PendingDecode {
    /// Waits for the submitted work and checks it: every coded lane ended where the encoder
    /// started, every tensor's bytes match its decoded checksum. Call it after submitting the
    /// command encoder the decodes were recorded into.
    pub async fn finish(self) -> Result<()> {
        let PendingDecode {
            device,
            recording,
            batch,
            readback,
            checks,
        } = self;
        recording.await?;
        if let Some(readback) = &readback {
            sync::map_read(&device, &[readback]).await?;
        }
        if let Some(batch) = batch {
            batch
                .finish(&device)
                .await
                .map_err(|e| name_item(e, &checks))?;
        }
        if let Some(readback) = readback {
            let view = readback
                .get_mapped_range(..)
                .map_err(|e| Error::Gpu(format!("reading results back failed: {e}")))?;
            for (t, at) in &checks {
                check_decoded(t, &view[*at as usize..][..t.bytes as usize])?;
            }
            drop(view);
            readback.destroy();
        }
        Ok(())
    }
}

/// A batch error about item `k` (the `k`-th coded tensor) attached to that tensor's name.
fn name_item(e: BatchError, checks: &[(TensorIndex, u64)]) -> Error {
    match e.item.and_then(|k| checks.get(k)) {
        Some((t, _)) => e.error.in_tensor(&t.name),
        None if checks.len() == 1 => e.error.in_tensor(&checks[0].0.name),
        None => e.error,
    }
}

impl GpuDecoder {
    /// Records the decode of tensors of an exprans file (index record and stored bytes, from
    /// [`crate::Archive`]) into `targets` on this decoder's device: coded tensors by the
    /// kernels, verbatim ones by a queue write. Checks every stored checksum first (nothing is
    /// recorded when one fails). Then submit `encoder` and await [`PendingDecode::finish`].
    ///
    /// Each target needs `STORAGE` and `COPY_SRC` usage (the decoded checksum is computed from
    /// a copy of what the GPU wrote) and `COPY_DST` for verbatim tensors, an offset that is a
    /// multiple of 4 and room for [`tensor_output_len`] bytes.
    pub fn record_tensors(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        items: &[(&TensorIndex, &[u8], OutputTarget<'_>)],
    ) -> Result<PendingDecode> {
        let mut coded: Vec<(CodedEntry, OutputTarget)> = Vec::new();
        let mut raw: Vec<(&[u8], OutputTarget)> = Vec::new();
        let mut checks = Vec::with_capacity(items.len());
        let mut readback_len = 0u64;
        for (t, stored, target) in items {
            let len = tensor_output_len(t);
            let usage = wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST;
            check_target(target, len, usage).map_err(|e| e.in_tensor(&t.name))?;
            match open_stored(t, stored)? {
                Stored::Raw(bytes) => raw.push((bytes, *target)),
                Stored::Coded(entry) => {
                    // Coded items come first in `checks`, so a batch item index is theirs.
                    checks.insert(coded.len(), ((*t).clone(), 0));
                    coded.push((entry, *target));
                    continue;
                }
            }
            checks.push(((*t).clone(), 0));
        }
        // Readback offsets, in `checks` order (coded, then verbatim).
        let targets = coded
            .iter()
            .map(|(_, t)| *t)
            .chain(raw.iter().map(|(_, t)| *t));
        let mut copies = Vec::with_capacity(checks.len());
        for ((t, at), target) in checks.iter_mut().zip(targets) {
            *at = readback_len;
            let len = tensor_output_len(t);
            copies.push((target, len));
            readback_len += len;
        }

        let (recorded, errors) = sync::capture(self.device(), "decoding on the GPU", || {
            let items: Vec<_> = coded.iter().map(|(e, t)| (e, Dest::Buffer(*t))).collect();
            let batch = if items.is_empty() {
                None
            } else {
                let batch = self.prepare(&items)?;
                self.record(&batch, encoder, None, false);
                Some(batch)
            };
            for (bytes, target) in &raw {
                let mut padded = bytes.to_vec();
                padded.resize(bytes.len().next_multiple_of(4), 0);
                if !padded.is_empty() {
                    self.queue()
                        .write_buffer(target.buffer, target.offset, &padded);
                }
            }
            let readback = (readback_len > 0).then(|| {
                let readback = self.device().create_buffer(&wgpu::BufferDescriptor {
                    label: Some("exprans checksum readback"),
                    size: readback_len,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                let mut at = 0;
                for (target, len) in &copies {
                    if *len > 0 {
                        encoder.copy_buffer_to_buffer(
                            target.buffer,
                            target.offset,
                            &readback,
                            at,
                            *len,
                        );
                    }
                    at += len;
                }
                readback
            });
            Ok::<_, Error>((batch, readback))
        });
        let (batch, readback) = recorded?;
        Ok(PendingDecode {
            device: self.device().clone(),
            recording: errors,
            batch,
            readback,
            checks,
        })
    }

    /// Decodes tensors of an exprans file into GPU buffers, in one submission, checking both
    /// checksums (see [`GpuDecoder::record_tensors`] for what the targets need).
    pub async fn decode_tensors_into(
        &self,
        items: &[(&TensorIndex, &[u8], OutputTarget<'_>)],
    ) -> Result<()> {
        let mut encoder = self.device().create_command_encoder(&Default::default());
        let pending = self.record_tensors(&mut encoder, items)?;
        self.queue().submit([encoder.finish()]);
        pending.finish().await
    }

    /// Decodes tensors of an exprans file (index record and stored bytes) into host memory, in
    /// one submission, checking both checksums: the GPU's [`crate::CpuDecoder::decode_tensor`].
    pub async fn decode_tensors(&self, items: &[(&TensorIndex, &[u8])]) -> Result<Vec<Vec<u8>>> {
        let mut coded = Vec::new();
        let mut opened = Vec::with_capacity(items.len());
        for (t, stored) in items {
            let s = open_stored(t, stored)?;
            if let Stored::Coded(entry) = &s {
                coded.push((*t, entry.clone()));
            }
            opened.push(s);
        }
        let batch: Vec<_> = coded.iter().map(|(_, e)| (e, Dest::Host)).collect();
        let mut decoded = self.run_batch(&batch).await.map_err(|e| {
            let names: Vec<_> = coded.iter().map(|(t, _)| ((*t).clone(), 0)).collect();
            name_item(e, &names)
        })?;
        decoded.reverse();
        let mut out = Vec::with_capacity(items.len());
        for ((t, _), s) in items.iter().zip(opened) {
            let bytes = match s {
                Stored::Raw(bytes) => bytes.to_vec(),
                Stored::Coded(_) => decoded.pop().expect("one output per coded entry"),
            };
            check_decoded(t, &bytes)?;
            out.push(bytes);
        }
        Ok(out)
    }
}

/// Bytes a tensor's decoded values take in a GPU buffer: its bytes rounded up to a whole u32.
pub fn tensor_output_len(t: &TensorIndex) -> u64 {
    t.bytes.next_multiple_of(4)
}
