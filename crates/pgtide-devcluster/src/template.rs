//! One `initdb` per process: every new primary is a copy of this template data directory,
//! which turns a ~1 s initdb into a ~50 ms `cp -a` per cluster.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::env::{bin_dir, run, scratch_dir, OsUser};
use crate::watchdog::Watchdog;
use crate::Error;

struct Template {
    data: PathBuf,
    // Never dropped (it lives in a static); its pipe closes when the process exits, and the
    // watchdog then deletes the template directory.
    _watchdog: Watchdog,
}

/// The template data directory, created on first use.
fn template() -> Result<&'static Template, Error> {
    static TEMPLATE: OnceLock<Result<Template, String>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| create().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|msg| Error::Template(msg.clone()))
}

fn create() -> Result<Template, Error> {
    let bin = bin_dir()?;
    let user = OsUser::detect()?;
    let base = tempfile::Builder::new()
        .prefix("pgtide-template-")
        .tempdir_in(scratch_dir())
        .map_err(|e| Error::io("create template dir", e))?
        .keep();
    let watchdog = Watchdog::spawn(&base)?;
    user.chown(&base)?;
    // Same <dir>/<node>/data layout as clusters so the watchdog script fits both.
    let node = base.join("template");
    std::fs::create_dir(&node).map_err(|e| Error::io(format!("mkdir {}", node.display()), e))?;
    user.chown(&node)?;
    let data = node.join("data");
    let mut cmd = user.command(bin.join("initdb"), &base);
    cmd.arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"])
        // 1 MB WAL segments: every copy and base backup carries less dead WAL.
        .args(["--no-sync", "--no-instructions", "--wal-segsize=1"]);
    run(cmd, None, None)?;
    Ok(Template {
        data,
        _watchdog: watchdog,
    })
}

/// Copies the template into `dest` (which must not exist yet), keeping ownership and modes.
pub(crate) fn copy_to(user: &OsUser, dest: &Path, cwd: &Path) -> Result<(), Error> {
    let template = template()?;
    let mut cmd = user.command("cp", cwd);
    cmd.arg("-a").arg(&template.data).arg(dest);
    run(cmd, None, None).map(drop)
}
