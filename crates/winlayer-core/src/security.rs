//! Self-relative security descriptors: strict binary parsing and building, and the common subset
//! of SDDL (owner, group, DACL and SACL with simple ACEs, well-known SID aliases, rights aliases
//! and hex masks).

use std::fmt::Write as _;

/// SE_DACL_PRESENT.
pub const SE_DACL_PRESENT: u16 = 0x0004;
/// SE_SACL_PRESENT.
pub const SE_SACL_PRESENT: u16 = 0x0010;
const SE_DACL_AUTO_INHERIT_REQ: u16 = 0x0100;
const SE_SACL_AUTO_INHERIT_REQ: u16 = 0x0200;
const SE_DACL_AUTO_INHERITED: u16 = 0x0400;
const SE_SACL_AUTO_INHERITED: u16 = 0x0800;
const SE_DACL_PROTECTED: u16 = 0x1000;
const SE_SACL_PROTECTED: u16 = 0x2000;
/// SE_SELF_RELATIVE.
pub const SE_SELF_RELATIVE: u16 = 0x8000;

const HEADER_LEN: usize = 20;
const ACL_HEADER_LEN: usize = 8;

/// What is wrong with a binary security descriptor or an SDDL string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdError {
    /// The binary form is malformed.
    #[error("security descriptor: {0}")]
    Binary(String),
    /// The SDDL text is malformed or outside the supported subset.
    #[error("SDDL: {0}")]
    Sddl(String),
}

fn bin(msg: impl Into<String>) -> SdError {
    SdError::Binary(msg.into())
}
fn sddl(msg: impl Into<String>) -> SdError {
    SdError::Sddl(msg.into())
}

/// A security identifier.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sid {
    /// The 48-bit identifier authority.
    pub authority: u64,
    /// Sub-authorities (at most 15).
    pub subs: Vec<u32>,
}

/// SDDL aliases of SIDs that do not depend on a domain or machine.
const SID_ALIASES: &[(&str, &str)] = &[
    ("AA", "S-1-5-32-579"),
    ("AC", "S-1-15-2-1"),
    ("AN", "S-1-5-7"),
    ("AO", "S-1-5-32-548"),
    ("AS", "S-1-18-1"),
    ("AU", "S-1-5-11"),
    ("BA", "S-1-5-32-544"),
    ("BG", "S-1-5-32-546"),
    ("BO", "S-1-5-32-551"),
    ("BU", "S-1-5-32-545"),
    ("CD", "S-1-5-32-574"),
    ("CG", "S-1-3-1"),
    ("CO", "S-1-3-0"),
    ("CY", "S-1-5-32-569"),
    ("ED", "S-1-5-9"),
    ("ER", "S-1-5-32-573"),
    ("ES", "S-1-5-32-576"),
    ("HA", "S-1-5-32-578"),
    ("HI", "S-1-16-12288"),
    ("IS", "S-1-5-32-568"),
    ("IU", "S-1-5-4"),
    ("LS", "S-1-5-19"),
    ("LU", "S-1-5-32-559"),
    ("LW", "S-1-16-4096"),
    ("ME", "S-1-16-8192"),
    ("MP", "S-1-16-8448"),
    ("MS", "S-1-5-32-577"),
    ("MU", "S-1-5-32-558"),
    ("NO", "S-1-5-32-556"),
    ("NS", "S-1-5-20"),
    ("NU", "S-1-5-2"),
    ("OW", "S-1-3-4"),
    ("PO", "S-1-5-32-550"),
    ("PS", "S-1-5-10"),
    ("PU", "S-1-5-32-547"),
    ("RA", "S-1-5-32-575"),
    ("RC", "S-1-5-12"),
    ("RD", "S-1-5-32-555"),
    ("RE", "S-1-5-32-552"),
    ("RM", "S-1-5-32-580"),
    ("RU", "S-1-5-32-554"),
    ("SI", "S-1-16-16384"),
    ("SO", "S-1-5-32-549"),
    ("SS", "S-1-18-2"),
    ("SU", "S-1-5-6"),
    ("SY", "S-1-5-18"),
    ("UD", "S-1-5-84-0-0-0-0-0"),
    ("WD", "S-1-1-0"),
    ("WR", "S-1-5-33"),
];

/// Aliases whose SID depends on a domain or the local machine: they cannot be resolved offline.
const RELATIVE_ALIASES: &[&str] =
    &["AP", "CA", "CN", "DA", "DC", "DD", "DG", "DU", "EA", "EK", "KA", "LA", "LG", "PA", "RO", "RS", "SA"];

impl Sid {
    /// Parses `S-1-<authority>-<sub>...` or a well-known SDDL alias such as `BA`.
    pub fn parse(text: &str) -> Result<Self, SdError> {
        if let Some((_, full)) = SID_ALIASES.iter().find(|(alias, _)| *alias == text) {
            return Self::parse(full);
        }
        if RELATIVE_ALIASES.contains(&text) {
            return Err(sddl(format!(
                "SID alias '{text}' names a domain- or machine-relative account; write the full S-1-5-21-… SID instead"
            )));
        }
        let bad = || sddl(format!("'{text}' is neither a SID (S-1-…) nor a known SID alias"));
        let rest = text.strip_prefix("S-1-").ok_or_else(bad)?;
        let mut parts = rest.split('-');
        let auth_text = parts.next().ok_or_else(bad)?;
        let authority = match auth_text.strip_prefix("0x").or_else(|| auth_text.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16).map_err(|_| bad())?,
            None => parse_decimal(auth_text).ok_or_else(bad)?,
        };
        if authority >= 1 << 48 {
            return Err(sddl(format!("SID '{text}': identifier authority exceeds 48 bits")));
        }
        let subs = parts
            .map(|p| parse_decimal(p).and_then(|v| u32::try_from(v).ok()).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()?;
        if subs.len() > 15 {
            return Err(sddl(format!("SID '{text}' has more than 15 sub-authorities")));
        }
        Ok(Sid { authority, subs })
    }

    /// The `S-1-…` string form.
    pub fn to_string_form(&self) -> String {
        let mut s = if self.authority < 1 << 32 {
            format!("S-1-{}", self.authority)
        } else {
            format!("S-1-0x{:012X}", self.authority)
        };
        for sub in &self.subs {
            let _ = write!(s, "-{sub}");
        }
        s
    }

    /// The SDDL form: an alias when one exists, otherwise `S-1-…`.
    pub fn to_sddl(&self) -> String {
        let full = self.to_string_form();
        SID_ALIASES.iter().find(|(_, s)| *s == full).map(|(alias, _)| alias.to_string()).unwrap_or(full)
    }

    fn encoded_len(&self) -> usize {
        8 + 4 * self.subs.len()
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(1);
        out.push(self.subs.len() as u8);
        out.extend_from_slice(&self.authority.to_be_bytes()[2..]);
        for sub in &self.subs {
            out.extend_from_slice(&sub.to_le_bytes());
        }
    }

    fn decode(buf: &[u8], what: &str) -> Result<Sid, SdError> {
        if buf.len() < 8 {
            return Err(bin(format!("{what} SID is truncated")));
        }
        if buf[0] != 1 {
            return Err(bin(format!("{what} SID has revision {} (expected 1)", buf[0])));
        }
        let count = buf[1] as usize;
        if count > 15 {
            return Err(bin(format!("{what} SID has {count} sub-authorities (at most 15)")));
        }
        if buf.len() < 8 + 4 * count {
            return Err(bin(format!("{what} SID is truncated")));
        }
        let mut auth = [0u8; 8];
        auth[2..].copy_from_slice(&buf[2..8]);
        let subs = (0..count).map(|i| le32(buf, 8 + 4 * i)).collect();
        Ok(Sid { authority: u64::from_be_bytes(auth), subs })
    }
}

fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// ACE types whose body is an access mask followed by a SID, with their SDDL names.
const SIMPLE_ACE_TYPES: &[(u8, &str)] = &[(0x00, "A"), (0x01, "D"), (0x02, "AU"), (0x03, "AL"), (0x11, "ML")];

/// ACE flags and their SDDL names, in the order Windows writes them.
const ACE_FLAGS: &[(u8, &str)] =
    &[(0x01, "OI"), (0x02, "CI"), (0x04, "NP"), (0x08, "IO"), (0x10, "ID"), (0x40, "SA"), (0x80, "FA")];

/// Access-right aliases that stand for several bits; tried first when rendering.
const COMBINED_RIGHTS: &[(&str, u32)] = &[
    ("FA", 0x001F_01FF),
    ("FR", 0x0012_0089),
    ("FW", 0x0012_0116),
    ("FX", 0x0012_00A0),
    ("KA", 0x000F_003F),
    ("KR", 0x0002_0019),
    ("KW", 0x0002_0006),
    ("KX", 0x0002_0019),
];

/// Single-bit access-right aliases.
const BIT_RIGHTS: &[(&str, u32)] = &[
    ("GA", 0x1000_0000),
    ("GR", 0x8000_0000),
    ("GW", 0x4000_0000),
    ("GX", 0x2000_0000),
    ("RC", 0x0002_0000),
    ("SD", 0x0001_0000),
    ("WD", 0x0004_0000),
    ("WO", 0x0008_0000),
    ("RP", 0x0000_0010),
    ("WP", 0x0000_0020),
    ("CC", 0x0000_0001),
    ("DC", 0x0000_0002),
    ("LC", 0x0000_0004),
    ("SW", 0x0000_0008),
    ("LO", 0x0000_0080),
    ("DT", 0x0000_0040),
    ("CR", 0x0000_0100),
];

/// Mandatory-label policy aliases (only meaningful in ML ACEs).
const LABEL_RIGHTS: &[(&str, u32)] = &[("NR", 0x2), ("NW", 0x1), ("NX", 0x4)];

/// One access control entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ace {
    /// ACE type (0 allowed, 1 denied, 2 audit, …).
    pub ace_type: u8,
    /// ACE flags (inheritance, audit success/failure).
    pub flags: u8,
    /// Mask and SID for the simple ACE types; the raw body for any other type.
    pub body: AceBody,
}

/// The part of an ACE after its 4-byte header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AceBody {
    /// An access mask and a trustee SID (allowed, denied, audit, alarm, mandatory label).
    Simple {
        /// Access mask.
        mask: u32,
        /// Trustee.
        sid: Sid,
    },
    /// Any other ACE type (object, callback, resource-attribute …), kept as bytes.
    Raw(Vec<u8>),
}

/// An access control list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    /// ACL revision (2, or 4 when object ACEs are present).
    pub revision: u8,
    /// The entries in order.
    pub aces: Vec<Ace>,
}

impl Acl {
    fn decode(buf: &[u8], what: &str) -> Result<Acl, SdError> {
        if buf.len() < ACL_HEADER_LEN {
            return Err(bin(format!("{what} is truncated")));
        }
        let revision = buf[0];
        if !(2..=4).contains(&revision) {
            return Err(bin(format!("{what} has revision {revision} (expected 2 to 4)")));
        }
        let size = le16(buf, 2) as usize;
        let count = le16(buf, 4) as usize;
        if size < ACL_HEADER_LEN || size > buf.len() {
            return Err(bin(format!("{what} claims {size} bytes but {} remain", buf.len())));
        }
        let body = &buf[..size];
        let mut at = ACL_HEADER_LEN;
        let mut aces = Vec::with_capacity(count.min(size / 8));
        for i in 0..count {
            if at + 4 > size {
                return Err(bin(format!("{what}: ACE {i} of {count} lies past the end of the ACL")));
            }
            let (ace_type, flags, ace_size) = (body[at], body[at + 1], le16(body, at + 2) as usize);
            if ace_size < 4 || ace_size % 4 != 0 || at + ace_size > size {
                return Err(bin(format!("{what}: ACE {i} has a bad size {ace_size}")));
            }
            let content = &body[at + 4..at + ace_size];
            let body = if SIMPLE_ACE_TYPES.iter().any(|(t, _)| *t == ace_type) {
                if content.len() < 4 {
                    return Err(bin(format!("{what}: ACE {i} is too short for its access mask")));
                }
                let sid = Sid::decode(&content[4..], &format!("{what} ACE {i}"))?;
                AceBody::Simple { mask: le32(content, 0), sid }
            } else {
                AceBody::Raw(content.to_vec())
            };
            aces.push(Ace { ace_type, flags, body });
            at += ace_size;
        }
        Ok(Acl { revision, aces })
    }

    fn encoded_len(&self) -> usize {
        ACL_HEADER_LEN + self.aces.iter().map(Ace::encoded_len).sum::<usize>()
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.revision, 0]);
        out.extend_from_slice(&(self.encoded_len() as u16).to_le_bytes());
        out.extend_from_slice(&(self.aces.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        for ace in &self.aces {
            out.extend_from_slice(&[ace.ace_type, ace.flags]);
            out.extend_from_slice(&(ace.encoded_len() as u16).to_le_bytes());
            match &ace.body {
                AceBody::Simple { mask, sid } => {
                    out.extend_from_slice(&mask.to_le_bytes());
                    sid.encode(out);
                }
                AceBody::Raw(raw) => out.extend_from_slice(raw),
            }
        }
    }
}

impl Ace {
    fn encoded_len(&self) -> usize {
        4 + match &self.body {
            AceBody::Simple { sid, .. } => 4 + sid.encoded_len(),
            AceBody::Raw(raw) => raw.len(),
        }
    }
}

/// A parsed security descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityDescriptor {
    /// SECURITY_DESCRIPTOR_CONTROL bits (always with SE_SELF_RELATIVE once encoded).
    pub control: u16,
    /// Owner SID.
    pub owner: Option<Sid>,
    /// Primary group SID.
    pub group: Option<Sid>,
    /// System ACL (present only with SE_SACL_PRESENT; `None` there means a NULL SACL).
    pub sacl: Option<Acl>,
    /// Discretionary ACL (present only with SE_DACL_PRESENT; `None` there means a NULL DACL).
    pub dacl: Option<Acl>,
}

impl SecurityDescriptor {
    /// Parses and checks a self-relative security descriptor; every offset and length is checked.
    pub fn from_bytes(buf: &[u8]) -> Result<Self, SdError> {
        if buf.len() < HEADER_LEN {
            return Err(bin(format!("{} bytes, shorter than the 20-byte header", buf.len())));
        }
        if buf[0] != 1 {
            return Err(bin(format!("revision {} (expected 1)", buf[0])));
        }
        let control = le16(buf, 2);
        if control & SE_SELF_RELATIVE == 0 {
            return Err(bin("not self-relative (SE_SELF_RELATIVE is clear)"));
        }
        let part = |field: usize, what: &str| -> Result<Option<&[u8]>, SdError> {
            let off = le32(buf, field) as usize;
            match off {
                0 => Ok(None),
                o if o < HEADER_LEN || o >= buf.len() => {
                    Err(bin(format!("{what} offset {o} is outside the {}-byte descriptor", buf.len())))
                }
                o => Ok(Some(&buf[o..])),
            }
        };
        let owner = part(4, "owner")?.map(|b| Sid::decode(b, "owner")).transpose()?;
        let group = part(8, "group")?.map(|b| Sid::decode(b, "group")).transpose()?;
        let sacl = part(12, "SACL")?.map(|b| Acl::decode(b, "SACL")).transpose()?;
        let dacl = part(16, "DACL")?.map(|b| Acl::decode(b, "DACL")).transpose()?;
        Ok(SecurityDescriptor { control, owner, group, sacl, dacl })
    }

    /// Encodes as a self-relative descriptor, laid out as Windows lays it out: header, SACL,
    /// DACL, owner, group.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN];
        out[0] = 1;
        out[2..4].copy_from_slice(&(self.control | SE_SELF_RELATIVE).to_le_bytes());
        let place = |out: &mut Vec<u8>, field: usize, write: &dyn Fn(&mut Vec<u8>)| {
            let off = out.len() as u32;
            write(out);
            out[field..field + 4].copy_from_slice(&off.to_le_bytes());
        };
        if let Some(acl) = &self.sacl {
            place(&mut out, 12, &|o| acl.encode(o));
        }
        if let Some(acl) = &self.dacl {
            place(&mut out, 16, &|o| acl.encode(o));
        }
        if let Some(sid) = &self.owner {
            place(&mut out, 4, &|o| sid.encode(o));
        }
        if let Some(sid) = &self.group {
            place(&mut out, 8, &|o| sid.encode(o));
        }
        out
    }

    /// Parses an SDDL string (the subset described in the module documentation).
    pub fn from_sddl(text: &str) -> Result<Self, SdError> {
        let mut sd = SecurityDescriptor { control: SE_SELF_RELATIVE, owner: None, group: None, sacl: None, dacl: None };
        let mut rest = text.trim();
        let mut seen = String::new();
        while !rest.is_empty() {
            let (tag, body) =
                rest.split_at(rest.find(':').ok_or_else(|| sddl(format!("expected O:, G:, D: or S: at '{rest}'")))?);
            let body = &body[1..];
            // A component runs to the next "X:" tag that is outside parentheses.
            let end = component_end(body);
            let (value, next) = body.split_at(end);
            if seen.contains(tag) {
                return Err(sddl(format!("'{tag}:' appears twice")));
            }
            seen.push_str(tag);
            match tag {
                "O" => sd.owner = Some(Sid::parse(value)?),
                "G" => sd.group = Some(Sid::parse(value)?),
                "D" | "S" => {
                    let dacl = tag == "D";
                    let (flags, acl) = parse_acl(value, dacl)?;
                    sd.control |= flags | if dacl { SE_DACL_PRESENT } else { SE_SACL_PRESENT };
                    if dacl { sd.dacl = acl } else { sd.sacl = acl }
                }
                other => {
                    return Err(sddl(format!("unknown component '{other}:' (expected O, G, D or S)")));
                }
            }
            rest = next;
        }
        Ok(sd)
    }

    /// Renders SDDL the way Windows does for the supported subset; ACE types outside it are
    /// shown as `(0xTT;flags;raw hex)` so nothing is hidden.
    pub fn to_sddl(&self) -> String {
        let mut s = String::new();
        if let Some(owner) = &self.owner {
            let _ = write!(s, "O:{}", owner.to_sddl());
        }
        if let Some(group) = &self.group {
            let _ = write!(s, "G:{}", group.to_sddl());
        }
        if self.control & SE_DACL_PRESENT != 0 {
            s.push_str("D:");
            render_acl(&mut s, self.control, true, self.dacl.as_ref());
        }
        if self.control & SE_SACL_PRESENT != 0 {
            s.push_str("S:");
            render_acl(&mut s, self.control, false, self.sacl.as_ref());
        }
        s
    }
}

/// Index of the next top-level `X:` tag in `s` (or its length).
fn component_end(s: &str) -> usize {
    let bytes = s.as_bytes();
    let mut depth = 0i32;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b'O' | b'G' | b'D' | b'S' if depth == 0 && bytes.get(i + 1) == Some(&b':') => return i,
            _ => {}
        }
    }
    s.len()
}

fn acl_flag_bits(dacl: bool) -> [(&'static str, u16); 3] {
    if dacl {
        [("P", SE_DACL_PROTECTED), ("AR", SE_DACL_AUTO_INHERIT_REQ), ("AI", SE_DACL_AUTO_INHERITED)]
    } else {
        [("P", SE_SACL_PROTECTED), ("AR", SE_SACL_AUTO_INHERIT_REQ), ("AI", SE_SACL_AUTO_INHERITED)]
    }
}

fn parse_acl(text: &str, dacl: bool) -> Result<(u16, Option<Acl>), SdError> {
    let which = if dacl { "D" } else { "S" };
    let (flag_text, mut aces_text) = text.split_at(text.find('(').unwrap_or(text.len()));
    if flag_text == "NO_ACCESS_CONTROL" {
        if !aces_text.is_empty() {
            return Err(sddl(format!("{which}:NO_ACCESS_CONTROL cannot have ACEs")));
        }
        return Ok((0, None));
    }
    let mut flags = 0;
    let mut rest = flag_text;
    'flags: while !rest.is_empty() {
        for (name, bit) in acl_flag_bits(dacl) {
            if let Some(r) = rest.strip_prefix(name) {
                flags |= bit;
                rest = r;
                continue 'flags;
            }
        }
        return Err(sddl(format!("unknown ACL flag in '{which}:{flag_text}' (expected P, AR or AI)")));
    }
    let mut aces = Vec::new();
    while !aces_text.is_empty() {
        let inner = aces_text
            .strip_prefix('(')
            .and_then(|r| r.find(')').map(|end| (&r[..end], &r[end + 1..])))
            .ok_or_else(|| sddl(format!("expected '(ace)' at '{aces_text}'")))?;
        aces.push(parse_ace(inner.0)?);
        aces_text = inner.1;
    }
    Ok((flags, Some(Acl { revision: 2, aces })))
}

fn parse_ace(text: &str) -> Result<Ace, SdError> {
    let fields: Vec<&str> = text.split(';').collect();
    if fields.len() != 6 {
        return Err(sddl(format!(
            "ACE '({text})' must have 6 fields separated by ';' (conditional and resource-attribute ACEs are not supported)"
        )));
    }
    let ace_type = SIMPLE_ACE_TYPES
        .iter()
        .find(|(_, name)| *name == fields[0])
        .map(|(t, _)| *t)
        .ok_or_else(|| sddl(format!("ACE type '{}' is not supported (A, D, AU, AL, ML are)", fields[0])))?;
    let mut flags = 0u8;
    let mut rest = fields[1];
    'flags: while !rest.is_empty() {
        for (bit, name) in ACE_FLAGS {
            if let Some(r) = rest.strip_prefix(name) {
                flags |= bit;
                rest = r;
                continue 'flags;
            }
        }
        return Err(sddl(format!("unknown ACE flag in '{}'", fields[1])));
    }
    let mask = parse_rights(fields[2], ace_type == 0x11)?;
    if !fields[3].is_empty() || !fields[4].is_empty() {
        return Err(sddl(format!(
            "ACE '({text})': object GUIDs are only valid in object ACEs, which are not supported"
        )));
    }
    let sid = Sid::parse(fields[5])?;
    Ok(Ace { ace_type, flags, body: AceBody::Simple { mask, sid } })
}

fn parse_rights(text: &str, label: bool) -> Result<u32, SdError> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).map_err(|_| sddl(format!("bad hex access mask '{text}'")));
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| sddl(format!("bad access mask '{text}'")));
    }
    let mut mask = 0;
    let mut rest = text;
    let tables: &[&[(&str, u32)]] = if label { &[LABEL_RIGHTS] } else { &[COMBINED_RIGHTS, BIT_RIGHTS] };
    'rights: while !rest.is_empty() {
        for table in tables {
            for (name, bits) in table.iter() {
                if let Some(r) = rest.strip_prefix(name) {
                    mask |= bits;
                    rest = r;
                    continue 'rights;
                }
            }
        }
        return Err(sddl(format!("unknown access right in '{text}'")));
    }
    Ok(mask)
}

fn render_rights(mask: u32, label: bool) -> String {
    if label {
        if mask & !0x7 == 0 {
            return LABEL_RIGHTS.iter().filter(|(_, b)| mask & b != 0).map(|(n, _)| *n).collect();
        }
        return format!("0x{mask:x}");
    }
    if let Some((name, _)) = COMBINED_RIGHTS.iter().find(|(_, b)| *b == mask) {
        return name.to_string();
    }
    let covered: u32 = BIT_RIGHTS.iter().filter(|(_, b)| mask & b != 0).map(|(_, b)| b).sum();
    if mask != 0 && covered == mask {
        return BIT_RIGHTS.iter().filter(|(_, b)| mask & b != 0).map(|(n, _)| *n).collect();
    }
    format!("0x{mask:x}")
}

fn render_acl(s: &mut String, control: u16, dacl: bool, acl: Option<&Acl>) {
    let Some(acl) = acl else {
        s.push_str("NO_ACCESS_CONTROL");
        return;
    };
    for (name, bit) in acl_flag_bits(dacl) {
        if control & bit != 0 {
            s.push_str(name);
        }
    }
    for ace in &acl.aces {
        let flags: String = ACE_FLAGS.iter().filter(|(b, _)| ace.flags & b != 0).map(|(_, n)| *n).collect();
        let type_name = SIMPLE_ACE_TYPES.iter().find(|(t, _)| *t == ace.ace_type).map(|(_, n)| *n);
        match (&ace.body, type_name) {
            (AceBody::Simple { mask, sid }, Some(name)) => {
                let _ =
                    write!(s, "({name};{flags};{};;;{})", render_rights(*mask, ace.ace_type == 0x11), sid.to_sddl());
            }
            // Only simple types are parsed into masks, so anything else is raw bytes.
            _ => {
                let _ = write!(s, "(0x{:02x};{flags};", ace.ace_type);
                if let AceBody::Raw(raw) = &ace.body {
                    for b in raw {
                        let _ = write!(s, "{b:02x}");
                    }
                }
                s.push(')');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_parse_and_render() {
        let sid = Sid::parse("BA").unwrap();
        assert_eq!(sid.to_string_form(), "S-1-5-32-544");
        assert_eq!(sid.to_sddl(), "BA");
        let ti = Sid::parse("S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464").unwrap();
        assert_eq!(ti.to_sddl(), "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464");
        assert!(Sid::parse("DA").unwrap_err().to_string().contains("domain"));
        assert!(Sid::parse("S-1-5-x").is_err());
        assert!(Sid::parse("S-1-281474976710656").is_err());
        assert!(Sid::parse(&format!("S-1-5{}", "-1".repeat(16))).is_err());
    }

    /// The 52-byte BUILTIN\Users owner/group descriptor that ko and go-containerregistry emit.
    #[test]
    fn ko_descriptor() {
        let bytes = [
            1, 0, 0, 0x80, 20, 0, 0, 0, 36, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x21,
            2, 0, 0, 1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x21, 2, 0, 0,
        ];
        let sd = SecurityDescriptor::from_bytes(&bytes).unwrap();
        assert_eq!(sd.to_sddl(), "O:BUG:BU");
    }

    #[test]
    fn sddl_round_trip() {
        for text in [
            "O:BAG:SYD:(A;;FA;;;BA)(A;;FA;;;SY)(A;;0x1200a9;;;BU)",
            "O:BAG:SYD:PAI(A;OICI;FA;;;BA)(A;OICIIO;GA;;;CO)(A;CI;LC;;;BU)(A;CI;DC;;;BU)(D;NP;FW;;;WD)",
            "O:SYD:NO_ACCESS_CONTROL",
            "D:",
            "S:AI(AU;SAFA;FA;;;WD)(ML;;NW;;;HI)",
            "O:S-1-5-21-1-2-3-500G:S-1-5-21-1-2-3-513",
        ] {
            let sd = SecurityDescriptor::from_sddl(text).unwrap();
            assert_eq!(sd.to_sddl(), text, "{text}");
            let again = SecurityDescriptor::from_bytes(&sd.to_bytes()).unwrap();
            assert_eq!(again.to_sddl(), text);
        }
    }

    #[test]
    fn sddl_rights_forms() {
        let sd = SecurityDescriptor::from_sddl("D:(A;;GRGX;;;WD)(A;;0x1F01FF;;;SY)(A;;2032127;;;BA)").unwrap();
        assert_eq!(sd.to_sddl(), "D:(A;;GRGX;;;WD)(A;;FA;;;SY)(A;;FA;;;BA)");
    }

    #[test]
    fn sddl_errors_are_specific() {
        for (text, needle) in [
            ("X:BA", "unknown component"),
            ("O:BAO:BA", "twice"),
            ("D:(A;;FA;;;BA", "expected '(ace)'"),
            ("D:(A;;FA;;BA)", "6 fields"),
            ("D:(OA;;FA;;;BA)", "not supported"),
            ("D:(A;ZZ;FA;;;BA)", "ACE flag"),
            ("D:(A;;QQ;;;BA)", "access right"),
            ("D:Q(A;;FA;;;BA)", "ACL flag"),
            ("O:nobody", "neither a SID"),
            ("no colon", "expected O:"),
        ] {
            let err = SecurityDescriptor::from_sddl(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn binary_checks_every_offset() {
        let good = SecurityDescriptor::from_sddl("O:BAG:SYD:(A;;FA;;;BA)").unwrap().to_bytes();
        assert!(SecurityDescriptor::from_bytes(&good).is_ok());
        for cut in 0..good.len() {
            assert!(SecurityDescriptor::from_bytes(&good[..cut]).is_err(), "truncated at {cut}");
        }
        let mut not_self_relative = good.clone();
        not_self_relative[3] = 0;
        assert!(SecurityDescriptor::from_bytes(&not_self_relative).is_err());
        let mut far_owner = good.clone();
        far_owner[4..8].copy_from_slice(&9999u32.to_le_bytes());
        assert!(SecurityDescriptor::from_bytes(&far_owner).unwrap_err().to_string().contains("outside"));
    }

    #[test]
    fn unknown_ace_types_survive_and_render() {
        // An ACL with one object ACE (type 5) holding 12 raw bytes.
        let mut acl = vec![4, 0, 24, 0, 1, 0, 0, 0, 5, 0, 16, 0];
        acl.extend_from_slice(&[0xAA; 12]);
        let mut sd = vec![1, 0, 0x04, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0];
        sd.extend_from_slice(&acl);
        let parsed = SecurityDescriptor::from_bytes(&sd).unwrap();
        assert_eq!(parsed.to_bytes(), sd);
        assert_eq!(parsed.to_sddl(), format!("D:(0x05;;{})", "aa".repeat(12)));
    }
}
