//! `curate init [DIR]`: create a workspace.

use std::path::Path;

use curate_stdlib::Workspace;

use super::fail;

pub fn run(target: &Path, name: Option<&str>) -> u8 {
    match Workspace::init(target, name) {
        Ok(ws) => {
            println!("created workspace `{}` in {}", ws.config.name, target.display());
            println!("next: curate -C {} import IMAGES_OR_TABLE", target.display());
            0
        }
        Err(e) => fail(&e),
    }
}
