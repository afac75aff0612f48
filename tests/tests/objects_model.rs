//! The object API against a HashMap model over random put/get/delete/batch/remount sequences on
//! a RAM device (sizes from 1 byte to several blocks). The same model runs on flash in
//! `flash_suite.rs`.

use proptest::prelude::*;
use vde_nostd::device::RamDevice;
use vde_nostd::Volume;
use vde_tests::objmodel::{obj_op, ObjModel, ObjOp};
use vde_tests::{fresh_image, Mem};

const BS: usize = 4096;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn objects_match_model(ops in proptest::collection::vec(obj_op(20000), 1..60)) {
        let mut img = fresh_image(BS, 1024, 32);
        let mut mem = Mem::new(BS, 16, 256);
        let mut model = ObjModel::default();
        let mut vol = Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
        for op in ops {
            if let ObjOp::Remount = op {
                let _ = vol.into_device();
                vol = Volume::<_, 16>::mount(RamDevice::new(&mut img, BS).unwrap(), mem.bufs()).unwrap();
            } else {
                model.apply(&mut vol, &op)?;
            }
            model.check(&mut vol)?;
        }
        vol.verify().unwrap();
    }
}
