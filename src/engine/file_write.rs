//! Timed writes of a host buffer (pwrite) or of GPU memory (cuFileWrite)
//! into a file opened with `O_DIRECT`: the storage tiers of IETF 5.4 (KV
//! blocks persisted to NVMe). One write in
//! flight at a time, so each write's duration is its transfer latency and
//! the bytes over the trial's wall time its throughput.
//!
//! `O_DIRECT` bypasses the page cache, so the bytes reach the device (its
//! volatile write cache, at least) before `pwrite` returns; no fsync is
//! issued, as GDS's cuFileWrite issues none. Buffer address, length and
//! file offset must be multiples of the device's logical block; 4 KiB
//! covers every NVMe format in use. Owns the file (removed on drop), not
//! the sweep: `suite::tiers` is.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::stats::LatencyHistogram;
use crate::verbs::cuda::{cufile, nvidia_fs_writes, CudaGpu, DeviceMemory, GdsBuffer, GdsHandle};
use crate::verbs::VerbsError;

use super::EngineError;

/// The alignment `O_DIRECT` needs of addresses, lengths and offsets.
pub const DIRECT_ALIGN_BYTES: u64 = 4096;

/// How long one trial writes.
#[derive(Debug, Clone, Copy)]
pub struct FileWritePlan {
    /// Bytes per write (a KV block).
    pub msg_bytes: u64,
    /// Write for this long...
    pub duration: Option<Duration>,
    /// ...or this many writes.
    pub iters: Option<u64>,
    /// A single write slower than this fails the trial.
    pub stall_timeout: Duration,
}

/// One trial's tallies.
#[derive(Debug, Clone, Default)]
pub struct FileTrial {
    /// Writes completed.
    pub writes: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Wall time of the trial, seconds.
    pub seconds: f64,
    /// Each write's duration.
    pub histogram: LatencyHistogram,
}

/// Where the bytes of each write come from.
enum Source {
    /// A 4 KiB-aligned window of a host buffer, written with `pwrite`.
    Host {
        file: File,
        buffer: Vec<u8>,
        start: usize,
    },
    /// GPU memory written with cuFileWrite (GPUDirect Storage, or cuFile's
    /// compatibility mode without nvidia-fs).
    Gpu {
        handle: GdsHandle,
        buffer: GdsBuffer,
        compat: bool,
        /// nvidia-fs's completed writes when the file was created.
        nvfs_writes: Option<u64>,
    },
}

/// A file opened with `O_DIRECT`, cycling writes over `slots` message-sized
/// regions, from an aligned host buffer or from GPU memory through cuFile.
pub struct DirectFile {
    source: Source,
    path: PathBuf,
    msg_bytes: u64,
    slots: u64,
    next_slot: u64,
}

impl std::fmt::Debug for DirectFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectFile")
            .field("path", &self.path)
            .field("transport", &self.transport())
            .field("msg_bytes", &self.msg_bytes)
            .field("slots", &self.slots)
            .finish()
    }
}

/// How many message-sized regions the file cycles over: enough that
/// consecutive writes land on different blocks, at most 1 GiB of file.
pub fn file_slots(msg_bytes: u64) -> u64 {
    ((1u64 << 30) / msg_bytes.max(1)).clamp(1, 4)
}

/// The byte at offset `i` of every message written (and checked by
/// [`DirectFile::verify_last`]).
pub fn file_pattern_byte(i: usize) -> u8 {
    (i % 251) as u8 ^ 0xa5
}

fn check_size(msg_bytes: u64) -> Result<usize, EngineError> {
    if msg_bytes == 0 || msg_bytes % DIRECT_ALIGN_BYTES != 0 {
        return Err(EngineError::Invalid(format!(
            "a file tier writes whole 4 KiB blocks (O_DIRECT), but the size is {msg_bytes} bytes; \
             give --sizes in multiples of 4K"
        )));
    }
    usize::try_from(msg_bytes)
        .map_err(|_| EngineError::Invalid(format!("{msg_bytes} bytes do not fit this machine")))
}

fn open_direct(path: &Path) -> Result<File, EngineError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|err| open_error(path, err))
}

impl DirectFile {
    /// Creates `dir/name` with `O_DIRECT` for `msg_bytes` writes (a
    /// multiple of 4 KiB) and fills the host source buffer with a pattern.
    pub fn create(dir: &Path, name: &str, msg_bytes: u64) -> Result<DirectFile, EngineError> {
        let len = check_size(msg_bytes)?;
        let path = dir.join(name);
        let file = open_direct(&path)?;
        // an aligned window into an over-allocated Vec: no allocator games
        let mut buffer = vec![0u8; len + DIRECT_ALIGN_BYTES as usize];
        let start = buffer.as_ptr().align_offset(DIRECT_ALIGN_BYTES as usize);
        for (i, b) in buffer[start..start + len].iter_mut().enumerate() {
            *b = file_pattern_byte(i);
        }
        Ok(DirectFile {
            source: Source::Host {
                file,
                buffer,
                start,
            },
            path,
            msg_bytes,
            slots: file_slots(msg_bytes),
            next_slot: 0,
        })
    }

    /// Creates `dir/name` with `O_DIRECT` for `msg_bytes` writes from GPU
    /// memory on `gpu` through cuFile: the buffer is filled with the
    /// pattern (cuMemcpy), registered with cuFile, and so is the file.
    pub fn create_gpu(
        dir: &Path,
        name: &str,
        msg_bytes: u64,
        gpu: &Arc<CudaGpu>,
    ) -> Result<DirectFile, EngineError> {
        let len = check_size(msg_bytes)?;
        let cufile = cufile().map_err(VerbsError::from)?;
        let memory = DeviceMemory::alloc(gpu, msg_bytes).map_err(VerbsError::from)?;
        let pattern: Vec<u8> = (0..len).map(file_pattern_byte).collect();
        memory
            .copy_from_host(0, &pattern)
            .map_err(VerbsError::from)?;
        drop(pattern);
        let buffer = cufile.register_buffer(memory).map_err(VerbsError::from)?;
        let path = dir.join(name);
        let file = open_direct(&path)?;
        let handle = match cufile.register_file(file) {
            Ok(handle) => handle,
            Err(err) => {
                let _ = std::fs::remove_file(&path);
                return Err(VerbsError::from(err).into());
            }
        };
        Ok(DirectFile {
            source: Source::Gpu {
                handle,
                buffer,
                compat: cufile.compat(),
                nvfs_writes: nvidia_fs_writes(),
            },
            path,
            msg_bytes,
            slots: file_slots(msg_bytes),
            next_slot: 0,
        })
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How bytes moved so far: "o-direct-write" (pwrite from host
    /// memory), "gds-compat" (no nvidia-fs: cuFile staged them through host
    /// memory), "gds" (nvidia-fs counted writes since the file was created)
    /// or "gds-unverified" (nvidia-fs is loaded but its counters did not
    /// move: statistics off, or cuFile fell back for this file).
    pub fn transport(&self) -> &'static str {
        match &self.source {
            Source::Host { .. } => "o-direct-write",
            Source::Gpu { compat: true, .. } => "gds-compat",
            Source::Gpu { nvfs_writes, .. } => match (nvfs_writes, nvidia_fs_writes()) {
                (Some(before), Some(now)) if now > *before => "gds",
                _ => "gds-unverified",
            },
        }
    }

    /// What one write's latency times: "pwrite" or "cufile-write".
    pub fn latency_clock(&self) -> &'static str {
        match &self.source {
            Source::Host { .. } => "pwrite",
            Source::Gpu { .. } => "cufile-write",
        }
    }

    /// Writes one message at the next slot; returns its duration.
    fn write_one(&mut self) -> Result<u64, EngineError> {
        let len = self.msg_bytes as usize;
        let offset = self.next_slot * self.msg_bytes;
        self.next_slot = (self.next_slot + 1) % self.slots;
        let failed = |what: String| {
            EngineError::Invalid(format!(
                "writing {len} bytes at offset {offset} of {} ({}) failed: {what}",
                self.path.display(),
                self.transport()
            ))
        };
        let t0 = Instant::now();
        match &self.source {
            Source::Host {
                file,
                buffer,
                start,
            } => file
                .write_all_at(&buffer[*start..*start + len], offset)
                .map_err(|err| {
                    failed(format!(
                        "{err}; check free space and that the file system supports O_DIRECT"
                    ))
                })?,
            Source::Gpu { handle, buffer, .. } => {
                let written = handle
                    .write(buffer, len, offset, 0)
                    .map_err(|err| failed(err.to_string()))?;
                if written != len {
                    return Err(failed(format!(
                        "cuFileWrite wrote {written} bytes; check free space"
                    )));
                }
            }
        }
        Ok(t0.elapsed().as_nanos() as u64)
    }

    /// Reads back the slot written last and checks every byte against the
    /// pattern: the bytes reached the file, from host or GPU memory.
    pub fn verify_last(&self, writes: u64) -> Result<(), EngineError> {
        if writes == 0 {
            return Err(EngineError::Invalid(format!(
                "verify: nothing was written to {} (no write completed in the trials)",
                self.path.display()
            )));
        }
        let len = self.msg_bytes as usize;
        let slot = (self.next_slot + self.slots - 1) % self.slots;
        let offset = slot * self.msg_bytes;
        // a plain (buffered) open: O_DIRECT writes left no stale cached pages
        let file = File::open(&self.path).map_err(|err| open_error(&self.path, err))?;
        let mut back = vec![0u8; len];
        file.read_exact_at(&mut back, offset).map_err(|err| {
            EngineError::Invalid(format!(
                "reading back {len} bytes at offset {offset} of {}: {err}",
                self.path.display()
            ))
        })?;
        let bad = back
            .iter()
            .enumerate()
            .filter(|(i, b)| **b != file_pattern_byte(*i))
            .count();
        match bad {
            0 => Ok(()),
            n => Err(EngineError::Invalid(format!(
                "verify: {n} of {len} bytes read back from {} at offset {offset} differ from what \
                 {} wrote",
                self.path.display(),
                self.transport()
            ))),
        }
    }

    /// Writes for the plan's duration or count, one write at a time.
    pub fn run(&mut self, plan: &FileWritePlan) -> Result<FileTrial, EngineError> {
        let mut trial = FileTrial::default();
        let start = Instant::now();
        loop {
            let done = match (plan.iters, plan.duration) {
                (Some(n), _) => trial.writes >= n,
                (None, Some(d)) => start.elapsed() >= d,
                (None, None) => trial.writes >= 1,
            };
            if done {
                break;
            }
            let ns = self.write_one()?;
            if ns > plan.stall_timeout.as_nanos() as u64 {
                return Err(EngineError::Stall {
                    what: format!(
                        "writing {} bytes to {}",
                        plan.msg_bytes,
                        self.path.display()
                    ),
                    waited_s: ns as f64 / 1e9,
                    completed: trial.writes,
                    in_flight: 1,
                });
            }
            trial.histogram.record(ns);
            trial.writes += 1;
            trial.bytes += plan.msg_bytes;
        }
        trial.seconds = start.elapsed().as_secs_f64();
        Ok(trial)
    }
}

impl Drop for DirectFile {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_file(&self.path) {
            log::warn!("removing {}: {err}", self.path.display());
        }
    }
}

fn open_error(path: &Path, err: io::Error) -> EngineError {
    let hint = match err.raw_os_error() {
        Some(libc::EINVAL) => {
            "; the file system there does not support O_DIRECT (tmpfs, some network file systems): \
             point --file-dir at a local disk (the NVMe under test)"
        }
        Some(libc::EACCES) | Some(libc::EPERM) => "; choose a writable --file-dir",
        Some(libc::ENOENT) => "; --file-dir must be an existing directory",
        _ => "",
    };
    EngineError::Invalid(format!(
        "cannot open {} with O_DIRECT: {err}{hint}",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cycle_within_a_gibibyte() {
        assert_eq!(file_slots(1 << 20), 4);
        assert_eq!(file_slots(256 << 20), 4);
        assert_eq!(file_slots(512 << 20), 2);
        assert_eq!(file_slots(1 << 30), 1);
        assert_eq!(file_slots(4 << 30), 1);
    }

    #[test]
    fn unaligned_sizes_are_refused_with_the_fix() {
        let err = DirectFile::create(Path::new("/tmp"), "x", 1000).unwrap_err();
        assert!(err.to_string().contains("multiples of 4K"), "{err}");
    }

    #[test]
    fn a_missing_directory_names_the_flag() {
        let err = DirectFile::create(Path::new("/nonexistent-infab"), "x", 4096).unwrap_err();
        assert!(err.to_string().contains("--file-dir"), "{err}");
    }

    /// Writes for real where the file system takes O_DIRECT (target/ on a
    /// disk); says so where it does not (tmpfs).
    #[test]
    fn writes_are_timed_and_the_file_removed() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let mut file = match DirectFile::create(&dir, "infab-direct-test.bin", 64 << 10) {
            Ok(file) => file,
            Err(err) => {
                eprintln!("skipped: {err}");
                return;
            }
        };
        let trial = file
            .run(&FileWritePlan {
                msg_bytes: 64 << 10,
                duration: None,
                iters: Some(8),
                stall_timeout: Duration::from_secs(30),
            })
            .unwrap();
        assert_eq!((trial.writes, trial.bytes), (8, 8 * (64 << 10)));
        assert_eq!(trial.histogram.summary().count, 8);
        assert_eq!(file.transport(), "o-direct-write");
        file.verify_last(trial.writes).unwrap();
        let path = file.path().to_path_buf();
        drop(file);
        assert!(!path.exists());
    }
}
