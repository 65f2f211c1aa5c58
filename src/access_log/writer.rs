//! The logger thread: every tick it takes the workers' buffers and appends them to the live
//! file, rotating it by size and age, gzipping rotated files a slice at a time between ticks,
//! and deleting the oldest files so the live file plus the rotated ones never exceed the
//! disk budget. A failing disk costs lines (counted), never requests.
//!
//! Rotated files are named `<file>.<YYYYmmdd-HHMMSS.mmm>` (UTC), plus `.gz` once compressed,
//! so their names sort oldest first.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::{Config, Shared};

/// How often the buffers are written out (sooner when one passes half full).
pub(super) const TICK: Duration = Duration::from_millis(100);
/// Compression works at most this long per tick, so writing is never held up for long.
const COMPRESS_SLICE: Duration = Duration::from_millis(30);
const COMPRESS_CHUNK: usize = 256 * 1024;
/// The same error is logged at most once per this long.
const REPORT_EVERY: Duration = Duration::from_secs(10);

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The open live file.
struct Output {
    path: PathBuf,
    file: File,
    size: u64,
    opened: Instant,
}

/// A rotated file and its size, oldest first in [`Writer::rotated`].
#[derive(Debug, Clone)]
pub(super) struct Rotated {
    pub path: PathBuf,
    pub size: u64,
}

/// A rotated file being gzipped into `<name>.gz.tmp`.
///
/// The encoder writes into memory; the writer moves its output to `file` only after making
/// room for exactly those bytes, so the budget holds even while the encoder flushes its tail.
struct Job {
    src: PathBuf,
    tmp: PathBuf,
    input: File,
    enc: flate2::write::GzEncoder<Vec<u8>>,
    file: File,
    /// Bytes in `file`.
    written: u64,
}

pub(super) struct Writer<'a> {
    shared: &'a Shared,
    out: Option<Output>,
    /// The path the rotated list belongs to.
    scanned: Option<PathBuf>,
    pub(super) rotated: Vec<Rotated>,
    job: Option<Job>,
    /// Files that failed to compress (kept as they are).
    failed: Vec<PathBuf>,
    batch: Vec<u8>,
    /// An open or write failure: not retried before this.
    retry_at: Option<Instant>,
    last_report: Option<(String, Instant)>,
    failing: bool,
    dropped_reported: u64,
    dropped_report_at: Instant,
}

pub(super) fn run(shared: &Shared, published: &'static crate::Published) {
    let mut w = Writer::new(shared);
    loop {
        std::thread::park_timeout(TICK);
        let stop = shared.stop.load(Ordering::Acquire);
        let cfg = published.load().log.clone();
        w.tick(&cfg);
        if stop {
            return;
        }
    }
}

impl<'a> Writer<'a> {
    fn new(shared: &'a Shared) -> Self {
        Writer {
            shared,
            out: None,
            scanned: None,
            rotated: Vec::new(),
            job: None,
            failed: Vec::new(),
            batch: Vec::new(),
            retry_at: None,
            last_report: None,
            failing: false,
            dropped_reported: 0,
            dropped_report_at: Instant::now(),
        }
    }

    /// One round: configuration changes, the workers' lines, rotation by age, compression,
    /// and the dropped-lines warning.
    pub(super) fn tick(&mut self, cfg: &Config) {
        let path = cfg.enabled().then(|| cfg.path.clone()).flatten();
        if self.shared.reopen.swap(false, Ordering::AcqRel) {
            if let Some(o) = self.out.take() {
                tracing::info!(path = %o.path.display(), "access log reopened (SIGUSR1)");
            }
            self.scanned = None;
            self.retry_at = None;
        }
        if self.out.as_ref().is_some_and(|o| Some(&o.path) != path.as_ref()) {
            self.out = None;
        }
        let lines = self.collect();
        match &path {
            Some(p) => {
                if self.scanned.as_ref() != Some(p) {
                    self.scan(p);
                }
                if lines > 0 {
                    self.write_batch(cfg, p, lines);
                }
                if let Some(o) = &self.out {
                    if o.size > 0 && o.opened.elapsed() >= cfg.rotate_every {
                        self.rotate(cfg);
                    }
                }
                self.compress_some(cfg);
            }
            None => add(&self.shared.stats.write_dropped, lines),
        }
        self.warn_dropped(path.as_deref());
    }

    /// Takes every worker's pending lines into `batch`; returns how many lines.
    fn collect(&mut self) -> u64 {
        self.batch.clear();
        let mut lines = 0;
        let shards = self.shared.shards.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for s in shards {
            let mut p = s.pending.lock().unwrap_or_else(|e| e.into_inner());
            if p.lines == 0 {
                continue;
            }
            if self.batch.is_empty() {
                std::mem::swap(&mut self.batch, &mut p.data);
            } else {
                self.batch.extend_from_slice(&p.data);
                p.data.clear();
            }
            lines += std::mem::take(&mut p.lines);
        }
        lines
    }

    /// Logs an error at most once per [`REPORT_EVERY`] for the same message.
    fn report(&mut self, msg: String) {
        add(&self.shared.stats.write_errors, 1);
        self.failing = true;
        let now = Instant::now();
        if let Some((last, at)) = &self.last_report {
            if *last == msg && now.duration_since(*at) < REPORT_EVERY {
                return;
            }
        }
        tracing::error!("access log: {msg}; lines are dropped until it works again (requests are not affected)");
        self.last_report = Some((msg, now));
    }

    fn warn_dropped(&mut self, path: Option<&Path>) {
        if self.dropped_report_at.elapsed() < REPORT_EVERY {
            return;
        }
        self.dropped_report_at = Instant::now();
        let dropped = self.shared.dropped();
        if dropped > self.dropped_reported {
            tracing::warn!(
                path = %path.map(|p| p.display().to_string()).unwrap_or_default(),
                dropped = dropped - self.dropped_reported,
                total = dropped,
                "access log lines dropped (the disk was slower than the traffic, or refused the writes)"
            );
            self.dropped_reported = dropped;
        }
    }

    fn open(&mut self, path: &Path) -> bool {
        if self.out.is_some() {
            return true;
        }
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        let r = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| OpenOptions::new().create(true).append(true).open(path))
            .and_then(|file| Ok((file.metadata()?.len(), file)));
        match r {
            Ok((size, file)) => {
                if self.failing {
                    tracing::info!(path = %path.display(), "access log: writing again");
                    self.failing = false;
                }
                self.out = Some(Output { path: path.to_path_buf(), file, size, opened: Instant::now() });
                true
            }
            Err(e) => {
                self.retry_at = Some(Instant::now() + Duration::from_secs(1));
                self.report(format!("cannot open {}: {e}", path.display()));
                false
            }
        }
    }

    /// Appends the batch, cut at line ends so the live file rotates before it would pass the
    /// rotation size, and making room in the budget before every write.
    fn write_batch(&mut self, cfg: &Config, path: &Path, lines: u64) {
        let batch = std::mem::take(&mut self.batch);
        let mut rest = &batch[..];
        let limit = cfg.rotate_size();
        while !rest.is_empty() {
            if !self.open(path) {
                add(&self.shared.stats.write_dropped, count_lines(rest));
                break;
            }
            let size = self.out.as_ref().map_or(0, |o| o.size);
            let room = limit.saturating_sub(size) as usize;
            let piece = if rest.len() <= room {
                rest
            } else {
                match rest[..room].iter().rposition(|&b| b == b'\n') {
                    Some(i) => &rest[..=i],
                    None if size > 0 => {
                        self.rotate(cfg);
                        continue;
                    }
                    // One line longer than the whole file may be: written alone.
                    None => &rest[..rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1)],
                }
            };
            self.make_room(cfg, piece.len() as u64);
            let Some(o) = self.out.as_mut() else { break };
            match o.file.write_all(piece) {
                Ok(()) => {
                    o.size += piece.len() as u64;
                    add(&self.shared.stats.bytes, piece.len() as u64);
                    rest = &rest[piece.len()..];
                }
                Err(e) => {
                    // Take back a partial line, so the file stays whole lines.
                    let _ = o.file.set_len(o.size);
                    let p = o.path.clone();
                    self.out = None;
                    self.retry_at = Some(Instant::now() + Duration::from_secs(1));
                    add(&self.shared.stats.write_dropped, count_lines(rest));
                    self.report(format!("cannot write {}: {e}", p.display()));
                    break;
                }
            }
        }
        let dropped_here = count_lines(rest);
        add(&self.shared.stats.lines, lines.saturating_sub(dropped_here));
        self.batch = batch;
    }

    /// Renames the live file to its rotated name and opens a new one.
    fn rotate(&mut self, cfg: &Config) {
        // The oldest go first, so the file count never passes its bound, even for a moment.
        self.make_room_for(cfg, 0, 1);
        let Some(o) = self.out.take() else { return };
        let mut at = SystemTime::now();
        let target = loop {
            let t = rotated_name(&o.path, at);
            let gz = gz_name(&t);
            if !t.exists() && !gz.exists() {
                break t;
            }
            at += Duration::from_millis(1);
        };
        if let Err(e) = fs::rename(&o.path, &target) {
            self.report(format!("cannot rotate {} to {}: {e}", o.path.display(), target.display()));
            // Keep writing to it rather than lose lines; the budget still holds it.
            self.out = Some(o);
            return;
        }
        add(&self.shared.stats.rotations, 1);
        self.rotated.push(Rotated { path: target, size: o.size });
        let path = o.path.clone();
        drop(o);
        self.open(&path);
        self.make_room(cfg, 0);
    }

    /// Deletes the oldest rotated files until at most `max_files` remain and the live file,
    /// the rotated files, the compression in progress and `reserve` more bytes fit in the budget.
    fn make_room(&mut self, cfg: &Config, reserve: u64) {
        self.make_room_for(cfg, reserve, 0);
    }

    /// [`Writer::make_room`], keeping room for `files` more rotated files.
    fn make_room_for(&mut self, cfg: &Config, reserve: u64, files: usize) {
        loop {
            let live = self.out.as_ref().map_or(0, |o| o.size);
            let tmp = self.job.as_ref().map_or(0, |j| j.written);
            let total = live + tmp + self.rotated.iter().map(|r| r.size).sum::<u64>();
            if self.rotated.is_empty()
                || (self.rotated.len() + files <= cfg.max_files && total + reserve <= cfg.max_total)
            {
                return;
            }
            let oldest = self.rotated.remove(0);
            if self.job.as_ref().is_some_and(|j| j.src == oldest.path) {
                if let Some(j) = self.job.take() {
                    let _ = fs::remove_file(&j.tmp);
                }
            }
            match fs::remove_file(&oldest.path) {
                Ok(()) => add(&self.shared.stats.deleted, 1),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => self.report(format!("cannot delete {}: {e}", oldest.path.display())),
            }
        }
    }

    /// Gzips rotated files for up to [`COMPRESS_SLICE`], oldest first.
    fn compress_some(&mut self, cfg: &Config) {
        if !cfg.compress {
            return;
        }
        let started = Instant::now();
        let mut buf = vec![0u8; COMPRESS_CHUNK];
        while started.elapsed() < COMPRESS_SLICE {
            if self.job.is_none() && !self.start_job() {
                return;
            }
            let Some(job) = self.job.as_mut() else { continue };
            let r = job.input.read(&mut buf).and_then(|n| {
                if n > 0 {
                    job.enc.write_all(&buf[..n]).map(|()| n)
                } else {
                    job.enc.try_finish().map(|()| 0)
                }
            });
            let r = r.and_then(|n| self.store_output(cfg).map(|()| n));
            match r {
                Ok(0) => self.finish_job(),
                Ok(_) => {}
                Err(e) => self.fail_job(e),
            }
        }
    }

    /// Moves what the encoder has produced to the temporary file, after making room for it.
    fn store_output(&mut self, cfg: &Config) -> std::io::Result<()> {
        let Some(job) = self.job.as_mut() else { return Ok(()) };
        let out = std::mem::take(job.enc.get_mut());
        if out.is_empty() {
            return Ok(());
        }
        self.make_room(cfg, out.len() as u64);
        // Making room may have deleted the file being compressed, and with it the job.
        let Some(job) = self.job.as_mut() else { return Ok(()) };
        job.file.write_all(&out)?;
        job.written += out.len() as u64;
        Ok(())
    }

    fn start_job(&mut self) -> bool {
        let Some(src) = self
            .rotated
            .iter()
            .find(|r| r.path.extension().is_none_or(|e| e != "gz") && !self.failed.contains(&r.path))
            .map(|r| r.path.clone())
        else {
            return false;
        };
        let mut tmp = gz_name(&src).into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let r = File::open(&src).and_then(|input| {
            let file = File::create(&tmp)?;
            let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(3));
            Ok(Job { src: src.clone(), tmp: tmp.clone(), input, enc, file, written: 0 })
        });
        match r {
            Ok(job) => {
                self.job = Some(job);
                true
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                self.failed.push(src.clone());
                self.report(format!("cannot compress {}: {e}", src.display()));
                false
            }
        }
    }

    fn finish_job(&mut self) {
        let Some(job) = self.job.take() else { return };
        let Job { src, tmp, file, written, .. } = job;
        let gz = gz_name(&src);
        match file.sync_all().and_then(|()| fs::rename(&tmp, &gz)) {
            Ok(()) => {
                let _ = fs::remove_file(&src);
                if let Some(r) = self.rotated.iter_mut().find(|r| r.path == src) {
                    *r = Rotated { path: gz, size: written };
                }
                add(&self.shared.stats.compressed, 1);
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                self.failed.push(src.clone());
                self.report(format!("cannot compress {}: {e}", src.display()));
            }
        }
    }

    fn fail_job(&mut self, e: std::io::Error) {
        if let Some(job) = self.job.take() {
            let _ = fs::remove_file(&job.tmp);
            self.report(format!("cannot compress {}: {e}", job.src.display()));
            // Tried again after the next rotation (the disk may have been full).
            self.failed.clear();
        }
    }

    /// Lists the rotated files of `path` left by earlier runs or rotations (oldest first) and
    /// removes compressions that were cut short.
    fn scan(&mut self, path: &Path) {
        self.scanned = Some(path.to_path_buf());
        self.job = None;
        self.failed.clear();
        self.rotated = list_rotated(path);
        let dir = parent(path);
        if let (Ok(entries), Some(name)) = (fs::read_dir(dir), path.file_name().and_then(|n| n.to_str())) {
            for e in entries.flatten() {
                let n = e.file_name();
                let n = n.to_string_lossy();
                if n.starts_with(name) && n.ends_with(".gz.tmp") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn count_lines(b: &[u8]) -> u64 {
    b.iter().filter(|&&c| c == b'\n').count() as u64
}

fn gz_name(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".gz");
    PathBuf::from(s)
}

/// `<path>.<YYYYmmdd-HHMMSS.mmm>` in UTC.
pub(super) fn rotated_name(path: &Path, at: SystemTime) -> PathBuf {
    let d = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let (y, mo, day, h, mi, s) = super::format::civil(d.as_secs());
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".{y:04}{mo:02}{day:02}-{h:02}{mi:02}{s:02}.{:03}", d.subsec_millis()));
    PathBuf::from(p)
}

/// The rotated files of `path` (plain or gzipped), oldest first.
pub(super) fn list_rotated(path: &Path) -> Vec<Rotated> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return Vec::new() };
    let prefix = format!("{name}.");
    let mut out: Vec<Rotated> = fs::read_dir(parent(path))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            let rest = n.strip_prefix(&prefix)?;
            let stamp = rest.strip_suffix(".gz").unwrap_or(rest);
            let ok = stamp.len() == 19
                && stamp.bytes().enumerate().all(|(i, c)| match i {
                    8 => c == b'-',
                    15 => c == b'.',
                    _ => c.is_ascii_digit(),
                });
            ok.then(|| Some(Rotated { path: e.path(), size: e.metadata().ok()?.len() }))?
        })
        .collect();
    let key = |r: &Rotated| {
        let s = r.path.to_string_lossy().into_owned();
        s.strip_suffix(".gz").map(str::to_string).unwrap_or(s)
    };
    out.sort_by_key(key);
    out
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        if let Some(o) = &mut self.out {
            let _ = o.file.flush();
        }
    }
}

/// For tests: a writer driven tick by tick.
#[cfg(test)]
pub(super) fn test_writer(shared: &Shared) -> Writer<'_> {
    Writer::new(shared)
}
