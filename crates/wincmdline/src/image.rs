//! From an image config's `Entrypoint`, `Cmd` and `ArgsEscaped` to what a Windows container
//! runs.
//!
//! `ArgsEscaped` (Docker's, deprecated in the OCI image spec but still written) says the
//! command was already turned into one escaped line. The OCI runtime spec then carries either
//! `process.args` (escaped and joined by the runtime, hcsshim) or `process.commandLine`
//! (run verbatim). Each engine decides differently; [`resolve`] reproduces each decision, and
//! flags the BuildKit pitfall: BuildKit sets `ArgsEscaped` on every `CMD`, exec form
//! included, so an unescaped program path with a space ends up unquoted.

use crate::{ComposeError, escape_arg, escape_args};

/// The command part of an image config (`config.Entrypoint`, `config.Cmd`,
/// `config.ArgsEscaped`); `null` and absent read as empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct ImageCommand {
    /// `Entrypoint`.
    #[serde(rename = "Entrypoint", default, deserialize_with = "null_as_empty")]
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    #[serde(rename = "Cmd", default, deserialize_with = "null_as_empty")]
    pub cmd: Vec<String>,
    /// `ArgsEscaped`.
    #[serde(rename = "ArgsEscaped", default, deserialize_with = "null_as_false")]
    pub args_escaped: bool,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(<Option<Vec<String>> as serde::Deserialize>::deserialize(d)?.unwrap_or_default())
}

fn null_as_false<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(<Option<bool> as serde::Deserialize>::deserialize(d)?.unwrap_or_default())
}

/// What the user asked for when starting the container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// A replacement entrypoint (`--entrypoint`, Kubernetes `command`); `Some(vec![])` clears it.
    pub entrypoint: Option<Vec<String>>,
    /// Replacement arguments (`docker run IMAGE ARGS…`, `ctr run IMAGE ID ARGS…`, Kubernetes `args`).
    pub cmd: Vec<String>,
}

/// Whose rules to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    /// containerd's `oci.WithImageConfigArgs` (ctr, nerdctl): the user's arguments replace
    /// `Cmd`; with `ArgsEscaped`, element 0 is taken raw whenever an entrypoint exists or the
    /// command came from the image.
    Containerd,
    /// containerd's CRI plugin (Kubernetes): with `ArgsEscaped` it always sets a command line,
    /// element 0 raw only when it came from the image.
    Cri,
    /// moby (`docker run`): `Cmd` and `ArgsEscaped` are taken from the image only when the user
    /// gave neither entrypoint nor arguments.
    Moby,
}

/// The OCI `process` fields a runtime derives.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Process {
    /// `process.args` (empty when a command line is set).
    pub args: Vec<String>,
    /// `process.commandLine`, run verbatim.
    #[serde(rename = "commandLine")]
    pub command_line: Option<String>,
    /// Where the result probably differs from what the image author meant.
    pub warnings: Vec<String>,
}

impl Process {
    /// The line the container's first process is started with: the command line, or the
    /// arguments escaped and joined as hcsshim does.
    pub fn line(&self) -> Result<String, ComposeError> {
        match &self.command_line {
            Some(line) => Ok(line.clone()),
            None => escape_args(&self.args),
        }
    }
}

/// Why no process can be derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Neither the image nor the user names a program.
    #[error("no command: the image has no Entrypoint or Cmd and none was given")]
    NoCommand,
    /// The runtime has no way to express the request.
    #[error("{0}")]
    Unsupported(&'static str),
    /// The arguments cannot be escaped into a line.
    #[error(transparent)]
    Compose(#[from] ComposeError),
}

/// Derives the process `runtime` starts for `image` and the user's `overrides`.
pub fn resolve(image: &ImageCommand, overrides: &Overrides, runtime: Runtime) -> Result<Process, ResolveError> {
    let Choice { entrypoint, tail, first_from_image, command_line, raw } = choose(image, overrides, runtime)?;
    let cmd = [entrypoint.as_slice(), &tail].concat();
    let Some((first, rest)) = cmd.split_first() else {
        return Err(ResolveError::NoCommand);
    };
    let mut warnings = Vec::new();
    let needs_quoting = escape_arg(first) != first.as_str();
    let (name, source) = if entrypoint.is_empty() { ("Cmd", &tail) } else { ("Entrypoint", &entrypoint) };
    if raw && source.len() > 1 && needs_quoting {
        warnings.push(format!(
            "ArgsEscaped is set but the image's {name} has {} elements (exec form, as BuildKit writes it): \
             element 0 {first:?} is used unescaped, so Windows splits it at its spaces or quotes",
            source.len(),
        ));
    }
    if image.args_escaped && first_from_image && !raw && source.len() == 1 && needs_quoting {
        warnings.push(format!(
            "ArgsEscaped is set but ignored once arguments are given: the image's {name} {first:?}, \
             one pre-escaped command line, is now quoted as a single program name"
        ));
    }
    if !command_line {
        return Ok(Process { args: cmd.clone(), command_line: None, warnings });
    }
    let line = match (raw, rest.is_empty()) {
        (true, true) => first.clone(),
        (true, false) => format!("{first} {}", escape_args(rest)?),
        (false, _) => escape_args(&cmd)?,
    };
    Ok(Process { args: Vec::new(), command_line: Some(line), warnings })
}

/// One runtime's decision.
struct Choice {
    entrypoint: Vec<String>,
    tail: Vec<String>,
    /// Element 0 comes from the image.
    first_from_image: bool,
    /// A command line is built (rather than `process.args`).
    command_line: bool,
    /// Element 0 goes into the command line unescaped.
    raw: bool,
}

fn choose(image: &ImageCommand, overrides: &Overrides, runtime: Runtime) -> Result<Choice, ResolveError> {
    let escaped = image.args_escaped;
    Ok(match runtime {
        Runtime::Containerd => {
            if overrides.entrypoint.is_some() {
                return Err(ResolveError::Unsupported(
                    "containerd's WithImageConfigArgs takes no entrypoint override (use --runtime cri or moby)",
                ));
            }
            let cmd_from_image = overrides.cmd.is_empty();
            let tail = if cmd_from_image { image.cmd.clone() } else { overrides.cmd.clone() };
            let first_from_image = !image.entrypoint.is_empty() || cmd_from_image;
            let raw = escaped && first_from_image;
            Choice { entrypoint: image.entrypoint.clone(), tail, first_from_image, command_line: raw, raw }
        }
        Runtime::Cri => {
            let mut first_from_image = false;
            let (mut entrypoint, mut tail) = (overrides.entrypoint.clone(), overrides.cmd.clone());
            if entrypoint.as_ref().is_none_or(Vec::is_empty) {
                if tail.is_empty() {
                    tail = image.cmd.clone();
                    first_from_image |= !image.cmd.is_empty();
                }
                if entrypoint.is_none() {
                    entrypoint = Some(image.entrypoint.clone());
                    first_from_image |= !image.entrypoint.is_empty() || overrides.cmd.is_empty();
                }
            }
            let entrypoint = entrypoint.unwrap_or_default();
            Choice { entrypoint, tail, first_from_image, command_line: escaped, raw: escaped && first_from_image }
        }
        Runtime::Moby => {
            let (mut entrypoint, mut tail, mut command_line) =
                (overrides.entrypoint.clone(), overrides.cmd.clone(), false);
            let (mut entrypoint_from_image, mut cmd_from_image) = (false, false);
            if entrypoint.as_ref().is_none_or(Vec::is_empty) {
                if tail.is_empty() {
                    tail = image.cmd.clone();
                    command_line = escaped;
                    cmd_from_image = true;
                }
                if entrypoint.is_none() {
                    entrypoint = Some(image.entrypoint.clone());
                    entrypoint_from_image = true;
                }
            }
            let entrypoint = entrypoint.unwrap_or_default();
            let first_from_image = if entrypoint.is_empty() { cmd_from_image } else { entrypoint_from_image };
            Choice { entrypoint, tail, first_from_image, command_line, raw: command_line }
        }
    })
}
