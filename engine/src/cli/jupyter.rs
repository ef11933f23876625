//! `curate jupyter install`: write the kernelspec (`curate jupyter kernel` runs
//! [`crate::jupyter::kernel`] itself).

use super::fail;

pub fn install(target: &crate::jupyter::Target, name: &str, display_name: &str) -> u8 {
    match crate::jupyter::install(target, name, display_name) {
        Ok(folder) => {
            println!("installed kernel `{name}` in {}", folder.display());
            println!("next: jupyter lab, then pick \"{display_name}\" as the kernel (or `curate run NOTEBOOK.ipynb` headless)");
            0
        }
        Err(e) => fail(&e),
    }
}
