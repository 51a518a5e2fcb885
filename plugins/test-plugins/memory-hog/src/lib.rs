//! `create` allocates 16 MiB chunks forever and writes to every page of each, so the memory is
//! really committed. The store's memory limit must trap it.
use coffer_rotator_sdk::{self as sdk, RotationError, Rotator, StepInput};

struct MemoryHog;

const CHUNK: usize = 16 << 20;

impl Rotator for MemoryHog {
    const REUSE_PENDING: bool = false;

    fn create(_input: &StepInput) -> Result<String, RotationError> {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = vec![0u8; CHUNK];
            for i in (0..CHUNK).step_by(4096) {
                chunk[i] = (i >> 12) as u8 | 1;
            }
            chunks.push(std::hint::black_box(chunk));
        }
    }

    fn test(_input: &StepInput) -> Result<(), RotationError> {
        Ok(())
    }
}

sdk::export_rotator!(MemoryHog);
