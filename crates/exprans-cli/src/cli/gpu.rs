//! The GPU side of the CLI: choosing the decoder for `--device`, `devices`, `selftest`, and the
//! GPU part of `bench`.

use crate::files::TensorDecoder;
use exprans::gpu::{self, AdapterSummary, DecoderOptions, GpuDecoder, KernelPath};
use exprans::{conformance, Archive, CodedEntry, Error, Result, TensorIndex};

/// The GPU decoder as the whole-file functions' [`TensorDecoder`]: every tensor of a batch in
/// one submission, both checksums checked (`GpuDecoder::decode_tensors`), blocking here at the
/// program's edge.
pub struct GpuTensorDecoder(pub GpuDecoder);

impl TensorDecoder for GpuTensorDecoder {
    fn decode_batch(
        &mut self,
        items: &[(&TensorIndex, &[u8])],
        outs: &mut Vec<Vec<u8>>,
    ) -> Result<()> {
        *outs = pollster::block_on(self.0.decode_tensors(items))?;
        Ok(())
    }
}

use crate::Device;

/// The decoder for `--device`. `auto` takes the GPU only when the default adapter is real
/// hardware: a CPU adapter (lavapipe, SwiftShader, WARP) is slower than the CPU decoder.
pub fn decoder_for(device: Device, quiet: bool) -> Result<Box<dyn TensorDecoder + Send>> {
    match device {
        Device::Cpu => Ok(crate::cpu_decoder()),
        Device::Gpu => Ok(Box::new(GpuTensorDecoder(pollster::block_on(
            GpuDecoder::new_default(DecoderOptions::default()),
        )?))),
        Device::Auto => {
            match pollster::block_on(GpuDecoder::new_default(DecoderOptions::default())) {
                Ok(d) if d.adapter().is_some_and(|a| a.device_type != "Cpu") => {
                    if !quiet {
                        let a = d.adapter().expect("checked");
                        eprintln!("decoding on {} ({})", a.name, a.backend);
                    }
                    Ok(Box::new(GpuTensorDecoder(d)))
                }
                _ => Ok(crate::cpu_decoder()),
            }
        }
    }
}

/// `exprans devices`.
pub fn devices(json: bool) -> Result<()> {
    let adapters = pollster::block_on(gpu::list_adapters(wgpu::Backends::all()));
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&adapters).expect("serializable")
        );
        return Ok(());
    }
    if adapters.is_empty() {
        println!(
            "no GPU adapter found; on Linux without a GPU: apt-get install -y mesa-vulkan-drivers"
        );
    }
    for a in &adapters {
        print_adapter(a);
    }
    Ok(())
}

fn print_adapter(a: &AdapterSummary) {
    println!(
        "{} / {} ({}, driver {})",
        a.backend, a.name, a.device_type, a.driver
    );
    let subgroups = if a.subgroups {
        format!("{}..{}", a.subgroup_min_size, a.subgroup_max_size)
    } else {
        "none".into()
    };
    println!(
        "  subgroup sizes {subgroups}; timestamp queries {}; max storage binding {} B; max buffer {} B; \
         workgroups/dim {}; invocations/workgroup {}; workgroup storage {} B",
        if a.timestamp_query { "yes" } else { "no" },
        a.max_storage_buffer_binding_size,
        a.max_buffer_size,
        a.max_compute_workgroups_per_dimension,
        a.max_compute_invocations_per_workgroup,
        a.max_compute_workgroup_storage_size
    );
}

/// One selftest line: an adapter and kernel path, and its outcome.
#[derive(serde::Serialize)]
struct SelftestResult {
    adapter: String,
    backend: String,
    path: KernelPath,
    cases: usize,
    failures: Vec<String>,
}

/// `exprans selftest`: decodes every conformance vector on each adapter and kernel path (each
/// case alone and all of them in one batch) and compares with the CPU reference decoder.
/// Fails when any case fails or no adapter exists.
pub fn selftest(all_adapters: bool, json: bool) -> Result<()> {
    let vectors = conformance::vectors();
    let entries: Vec<Vec<u8>> = vectors.iter().map(|v| v.encode()).collect::<Result<_>>()?;
    let parsed: Vec<CodedEntry> = vectors
        .iter()
        .zip(&entries)
        .map(|(v, e)| v.parse(e))
        .collect::<Result<_>>()?;
    let mut expected = Vec::with_capacity(parsed.len());
    for (v, e) in vectors.iter().zip(&parsed) {
        let mut out = vec![0u8; v.values.len()];
        exprans::CpuDecoder::Reference.decode_entry(e, &mut out)?;
        expected.push(out);
    }

    let adapters = if all_adapters {
        pollster::block_on(gpu::all_adapters(wgpu::Backends::all()))
    } else {
        Vec::new()
    };
    let mut decoders: Vec<Result<GpuDecoder>> = Vec::new();
    for force_portable in [false, true] {
        let options = DecoderOptions {
            force_portable,
            ..DecoderOptions::default()
        };
        if all_adapters {
            for a in &adapters {
                decoders.push(pollster::block_on(GpuDecoder::for_adapter(a, options)));
            }
        } else {
            decoders.push(pollster::block_on(GpuDecoder::new_default(options)));
        }
    }
    let mut results = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for decoder in decoders {
        let decoder = decoder?;
        let summary = decoder.adapter().cloned().expect("opened on an adapter");
        // Without subgroups both options give the portable path: test it once.
        if !seen.insert((
            summary.backend.clone(),
            summary.name.clone(),
            decoder.path(),
        )) {
            continue;
        }
        let mut failures = Vec::new();
        for ((v, e), want) in vectors.iter().zip(&parsed).zip(&expected) {
            match pollster::block_on(decoder.decode_entries(&[e])) {
                Ok(out) if out[0] == *want => {}
                Ok(_) => failures.push(format!("{}: wrong bytes", v.name)),
                Err(err) => failures.push(format!("{}: {err}", v.name)),
            }
        }
        let all: Vec<&CodedEntry> = parsed.iter().collect();
        match pollster::block_on(decoder.decode_entries(&all)) {
            Ok(out) if out == expected => {}
            Ok(_) => failures.push("batch of every case: wrong bytes".into()),
            Err(err) => failures.push(format!("batch of every case: {err}")),
        }
        results.push(SelftestResult {
            adapter: summary.name,
            backend: summary.backend,
            path: decoder.path(),
            cases: vectors.len() + 1,
            failures,
        });
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&results).expect("serializable")
        );
    } else {
        for r in &results {
            let verdict = if r.failures.is_empty() {
                "PASS"
            } else {
                "FAIL"
            };
            println!(
                "{verdict} {} / {} ({} kernel): {} of {} cases",
                r.backend,
                r.adapter,
                r.path,
                r.cases - r.failures.len(),
                r.cases
            );
            for f in &r.failures {
                println!("    {f}");
            }
        }
    }
    let failed = results.iter().filter(|r| !r.failures.is_empty()).count();
    if failed > 0 {
        return Err(Error::Gpu(format!(
            "selftest failed on {failed} of {} adapter/kernel combinations",
            results.len()
        )));
    }
    Ok(())
}

/// GPU decode benchmark of the coded tensors of an exprans file, all in one batch.
pub fn bench(packed: &[u8], archive: &Archive, repeat: usize) -> Result<serde_json::Value> {
    let decoder = pollster::block_on(GpuDecoder::new_default(DecoderOptions::default()))?;
    let mut coded = Vec::new();
    let mut entries: Vec<CodedEntry> = Vec::new();
    for t in &archive.tensors {
        if let Some(entry) = CodedEntry::of_tensor(&t.index, t.stored_in(packed)?)? {
            coded.push(&t.index);
            entries.push(entry);
        }
    }
    let refs: Vec<&CodedEntry> = entries.iter().collect();
    let report = pollster::block_on(decoder.bench(&refs, repeat as u32))?;
    for (index, crc) in coded.iter().zip(&report.decoded_crc32c) {
        if *crc != index.decoded_crc32c {
            return Err(
                Error::corrupt("the GPU benchmark decoded wrong bytes").in_tensor(&index.name)
            );
        }
    }
    let mut value = serde_json::to_value(&report).expect("serializable");
    value["adapter"] = serde_json::to_value(decoder.adapter()).expect("serializable");
    value["decode_vs_copy_u32"] = report.decode_vs_copy_u32().into();
    value["decode_vs_copy_vec4"] = report.decode_vs_copy_vec4().into();
    // Each coded tensor's decoded bytes matched its checksum.
    value["checked_tensors"] = coded.len().into();
    Ok(value)
}
