//! Embeds the Windows application manifest into winlayer.exe: Windows 10/11 and Server 2016+
//! support declared (so GetVersionEx and other manifest-gated behaviour see the real OS) and
//! long paths enabled. Nothing happens for other targets.

fn main() {
    if std::env::var_os("CARGO_CFG_WINDOWS").is_some() {
        use embed_manifest::manifest::{Setting, SupportedOS};
        let manifest = embed_manifest::empty_manifest()
            .name("winlayer")
            .supported_os(SupportedOS::Windows10..=SupportedOS::Windows10)
            .long_path_aware(Setting::Enabled);
        embed_manifest::embed_manifest(manifest).expect("embedding the Windows manifest");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
