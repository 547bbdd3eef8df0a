//! Crash-safe file writes: write a temporary file beside the target, flush it
//! to disk, then rename it over the target, so a reader never sees half a file
//! and a failed write leaves the previous version intact. [`Staged`] does the
//! same for a set of files that belong together (the three PNGs of one image,
//! a NIfTI mask and its probabilities): nothing is replaced until every file
//! of the set is on disk.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

static NEXT_THREAD: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's number in temporary names, given when it first asks
    /// for one.
    static THREAD: u64 = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
}

/// The temporary sibling a write to `path` from this thread goes through:
/// `<name>.<pid>-<thread>.tmp<suffix>`, so two processes or two threads
/// writing one target never share a temporary file. `suffix` is for writers
/// that pick their format by extension (`.nii.gz`).
///
/// # Errors
///
/// [`Error::Invalid`] if `path` has no file name.
pub fn temp_path(path: &Path, suffix: &str) -> Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        Error::invalid(
            "output path",
            format!("{} has no file name", path.display()),
        )
    })?;
    let mut tmp_name = name.to_os_string();
    let thread = THREAD.with(|t| *t);
    tmp_name.push(format!(".{}-{thread}.tmp{suffix}", std::process::id()));
    Ok(path.with_file_name(tmp_name))
}

/// Writes `bytes` to `path` atomically (temp file in the same folder + rename).
///
/// # Errors
///
/// [`Error::Io`] naming `path` if any step fails; the temporary file is
/// removed and an existing `path` is left untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut staged = Staged::default();
    staged.write(path, bytes)?;
    staged.commit()
}

/// A set of files written whole to temporary siblings first and renamed over
/// their targets together by [`Staged::commit`]. If any file of the set fails
/// (encoding, a full disk), none of the targets is touched; the temporary
/// files of a set dropped without `commit` are removed. (Renames themselves
/// cannot be made atomic as a group; they only start once every file is on
/// disk, and a failing rename stops the rest.)
#[derive(Debug, Default)]
#[must_use = "nothing is written until `commit`"]
pub struct Staged {
    /// (temporary file, target), in the order they were staged.
    files: Vec<(PathBuf, PathBuf)>,
}

impl Staged {
    /// Writes `bytes` to `target`'s temporary sibling and flushes it to disk.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming `target`.
    pub fn write(&mut self, target: &Path, bytes: &[u8]) -> Result<()> {
        self.write_with(target, "", |tmp| {
            let mut file = fs::File::create(tmp).map_err(|e| Error::io(target, e))?;
            file.write_all(bytes).map_err(|e| Error::io(target, e))
        })
    }

    /// Lets `write` fill `target`'s temporary sibling (named with `suffix`,
    /// see [`temp_path`]), then flushes it to disk.
    ///
    /// # Errors
    ///
    /// `write`'s error, or [`Error::Io`] naming `target`; [`Error::Invalid`]
    /// if `target` is already in the set.
    pub fn write_with(
        &mut self,
        target: &Path,
        suffix: &str,
        write: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        // Two entries for one file would share a temporary file.
        let key = same_file_key(target);
        if self.files.iter().any(|(_, t)| same_file_key(t) == key) {
            return Err(Error::invalid(
                "output path",
                format!("{} is written twice in one set", target.display()),
            ));
        }
        let tmp = temp_path(target, suffix)?;
        self.files.push((tmp.clone(), target.to_path_buf()));
        write(&tmp)?;
        fs::OpenOptions::new()
            .write(true)
            .open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(target, e))
    }

    /// Renames every temporary file over its target, in the order staged.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the first target that could not be replaced and
    /// those replaced before it; the temporary files not yet renamed are
    /// removed.
    pub fn commit(mut self) -> Result<()> {
        let files = std::mem::take(&mut self.files);
        let mut replaced = Vec::new();
        let mut pending = files.into_iter();
        for (tmp, target) in pending.by_ref() {
            if let Err(e) = fs::rename(&tmp, &target) {
                let _ = fs::remove_file(&tmp);
                self.files = pending.collect();
                let e = if replaced.is_empty() {
                    e
                } else {
                    std::io::Error::new(
                        e.kind(),
                        format!("{e} (already replaced: {})", replaced.join(", ")),
                    )
                };
                return Err(Error::io(&target, e));
            }
            replaced.push(target.display().to_string());
        }
        Ok(())
    }
}

/// A target as its folder resolves (`./d/x` and `d/x`, or a link to `d`, are
/// one file), else as written.
fn same_file_key(target: &Path) -> PathBuf {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match (fs::canonicalize(parent), target.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => target.to_path_buf(),
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for (tmp, _) in &self.files {
            let _ = fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_that_fails_part_way_replaces_nothing_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
        fs::write(&a, "old a").unwrap();
        fs::write(&b, "old b").unwrap();
        let mut set = Staged::default();
        set.write(&a, b"new a").unwrap();
        let err = set
            .write_with(&b, "", |_| Err(Error::invalid("b", "encoding failed")))
            .unwrap_err();
        assert!(err.to_string().contains("encoding failed"), "{err}");
        drop(set);
        assert_eq!(fs::read_to_string(&a).unwrap(), "old a");
        assert_eq!(fs::read_to_string(&b).unwrap(), "old b");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);

        let mut set = Staged::default();
        set.write(&a, b"new a").unwrap();
        set.write(&b, b"new b").unwrap();
        let again = dir.path().join(".").join("a.txt");
        assert!(set.write(&again, b"again").is_err(), "one target twice");
        set.commit().unwrap();
        assert_eq!(fs::read_to_string(&a).unwrap(), "new a");
        assert_eq!(fs::read_to_string(&b).unwrap(), "new b");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn threads_writing_one_target_use_their_own_temporary_files() {
        let target = Path::new("out/x.png");
        let here = temp_path(target, "").unwrap();
        let there = std::thread::spawn(move || temp_path(target, "").unwrap())
            .join()
            .unwrap();
        assert_ne!(here, there);
        assert_eq!(here, temp_path(target, "").unwrap(), "stable per thread");
        let gz = temp_path(Path::new("v.nii.gz"), ".nii.gz").unwrap();
        assert!(gz.to_str().unwrap().ends_with(".tmp.nii.gz"), "{gz:?}");
    }

    #[test]
    fn a_failed_rename_names_the_target_and_removes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("is-a-folder");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), "x").unwrap();
        let later = dir.path().join("later.txt");
        let mut set = Staged::default();
        set.write(&blocked, b"file over a full folder").unwrap();
        set.write(&later, b"later").unwrap();
        let err = set.commit().unwrap_err().to_string();
        assert!(err.contains("is-a-folder"), "{err}");
        assert!(!later.exists());
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the folder: {left:?}");

        // A failure after a first rename names what was already replaced.
        let first = dir.path().join("first.txt");
        let mut set = Staged::default();
        set.write(&first, b"first").unwrap();
        set.write(&blocked, b"file over a full folder").unwrap();
        let err = set.commit().unwrap_err().to_string();
        assert!(
            err.contains("already replaced") && err.contains("first.txt"),
            "{err}"
        );
    }
}
