//! `weft image ...`

use anyhow::Result;
use weft_model::paths;

use crate::cli::{Format, ImageCmd};
use crate::output::{emit, Table};

pub(super) fn image(fmt: Format, cmd: ImageCmd) -> Result<i32> {
    let store = weft_image::ImageStore::open(&paths::images_root())?;
    match cmd {
        ImageCmd::Ls => {
            // The toolbox always exists.
            store.ensure_toolbox(&std::env::current_exe()?)?;
            let images = store.list()?;
            emit(fmt, &images, || {
                let mut t = Table::new(&["NAME", "SIZE", "SOURCE"]);
                for i in &images {
                    t.row(vec![
                        i.name.clone(),
                        format!("{:.1}MB", i.size as f64 / 1e6),
                        i.source.clone(),
                    ]);
                }
                t
            })?;
        }
        ImageCmd::Build { name, from_host } => {
            let paths: Vec<_> = from_host.iter().map(Into::into).collect();
            let img = store.build_from_host(&name, &paths)?;
            println!("{}", img.name);
        }
        ImageCmd::Rm { name } => {
            store.remove(&name)?;
            println!("{name}");
        }
        ImageCmd::Import { file, name } => {
            for img in store.import(std::path::Path::new(&file), name.as_deref())? {
                println!("{}", img.name);
            }
        }
    }
    Ok(0)
}
