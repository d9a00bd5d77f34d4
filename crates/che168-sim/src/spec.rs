//! The specification table (`configuration`): groups 基本参数, 车身, 发动机 (or
//! 电动机 for electric cars), 变速箱, 底盘转向, 车轮制动, with che168's stable item
//! ids. Every value is a string; a few are the `-` placeholder.

use std::borrow::Cow;

use crate::listing::{Core, ParamGroup, ParamItem, SpecTable};
use crate::rng::Rng;
use crate::vocab::Power;

/// Items of one group; values other than the car name and the manufacturer
/// are replaced by `-` now and then, as on the real site.
struct Group<'r> {
    rng: &'r mut Rng,
    items: Vec<ParamItem>,
}

impl<'r> Group<'r> {
    fn new(rng: &'r mut Rng) -> Self {
        Self {
            rng,
            items: Vec::with_capacity(16),
        }
    }

    fn add(
        &mut self,
        id: u32,
        name: &'static str,
        value: impl Into<Cow<'static, str>>,
    ) -> &mut Self {
        let value = if id != 93 && id != 94 && self.rng.chance(25) {
            Cow::Borrowed("-")
        } else {
            value.into()
        };
        self.items.push(ParamItem { name, id, value });
        self
    }

    fn done(self, name: &'static str) -> ParamGroup {
        ParamGroup {
            name,
            paramitems: self.items,
        }
    }
}

pub(crate) fn table(rng: &mut Rng, c: &Core, specid: u64, title: &str) -> SpecTable {
    let m = c.model;
    let t = c.trim;
    let [length, width, height, wheelbase, weight] = m.dims;
    let emission = if c.year >= 2019 { "国VI" } else { "国V" };
    let emission_in_basic = rng.chance(500);
    let (total_kw, total_ps) = match t.power {
        Power::Ice {
            kw, ps, motor_kw, ..
        } => (kw + motor_kw.unwrap_or(0), ps),
        Power::Electric { kw, .. } => (kw, kw * 136 / 100),
    };
    let sprint = (1400.0 / f64::from(total_ps.max(60))).clamp(2.9, 14.0);

    let mut groups = Vec::with_capacity(7);

    let mut basic = Group::new(rng);
    basic
        .add(93, "车型名称", title.to_owned())
        .add(
            86,
            "厂商指导价(元)",
            format!("{:.2}万", f64::from(t.msrp) / 10_000.0),
        )
        .add(94, "厂商", m.maker)
        .add(91, "级别", m.class);
    match t.power {
        Power::Ice {
            fuel,
            ml,
            turbo,
            cylinders,
            ..
        } => {
            basic.add(90, "能源类型", fuel.energy_cn());
            if emission_in_basic {
                basic.add(104, "环保标准", emission);
            }
            basic.add(87, "上市时间", format!("{}.{:02}", c.year - 1, 9));
            basic.add(88, "最大功率(kW)", total_kw.to_string());
            let litres = (f64::from(ml) / 100.0).round() / 10.0;
            let aspiration = if turbo { "T" } else { "L" };
            basic.add(
                101,
                "发动机",
                format!("{litres:.1}{aspiration} {total_ps}马力 L{cylinders}"),
            );
        }
        Power::Electric { .. } => {
            basic.add(90, "能源类型", "纯电动");
            basic.add(87, "上市时间", format!("{}.{:02}", c.year - 1, 4));
            basic.add(88, "最大功率(kW)", total_kw.to_string());
            basic.add(102, "电动机(Ps)", total_ps.to_string());
        }
    }
    basic
        .add(108, "变速箱", t.gearbox.short)
        .add(92, "长*宽*高(mm)", format!("{length}*{width}*{height}"))
        .add(115, "车身结构", m.structure)
        .add(
            96,
            "最高车速(km/h)",
            (150 + total_ps / 3).min(260).to_string(),
        )
        .add(97, "官方0-100km/h加速(s)", format!("{sprint:.1}"))
        .add(103, "整车质保", "三年或10万公里");
    groups.push(basic.done("基本参数"));

    let doors = m.structure.chars().next().unwrap_or('4').to_string();
    let seats = m.structure.chars().nth(2).unwrap_or('5').to_string();
    let mut body = Group::new(rng);
    body.add(28, "长度(mm)", length.to_string())
        .add(29, "宽度(mm)", width.to_string())
        .add(30, "高度(mm)", height.to_string())
        .add(31, "轴距(mm)", wheelbase.to_string())
        .add(36, "车门数(个)", doors)
        .add(26, "座位数(个)", seats);
    if matches!(t.power, Power::Ice { .. }) {
        body.add(38, "油箱容积(L)", (45 + length / 200).to_string());
    }
    body.add(106, "整备质量(kg)", weight.to_string());
    groups.push(body.done("车身"));

    if let Power::Ice {
        fuel,
        ml,
        code,
        turbo,
        cylinders,
        ps,
        kw,
        nm,
        ..
    } = t.power
    {
        let litres = (f64::from(ml) / 100.0).round() / 10.0;
        let mut engine = Group::new(rng);
        engine
            .add(58, "发动机型号", code)
            .add(3, "排量(mL)", ml.to_string())
            .add(4, "排量(L)", format!("{litres:.1}"))
            .add(
                13,
                "进气形式",
                if turbo {
                    "涡轮增压"
                } else {
                    "自然吸气"
                },
            )
            .add(5, "气缸排列形式", "L")
            .add(6, "气缸数(个)", cylinders.to_string())
            .add(14, "最大马力(Ps)", ps.to_string())
            .add(15, "最大功率(kW)", kw.to_string())
            .add(17, "最大扭矩(N·m)", nm.to_string())
            .add(20, "燃料形式", fuel.energy_cn())
            .add(21, "燃油标号", if turbo { "95号" } else { "92号" })
            .add(22, "供油方式", if turbo { "直喷" } else { "混合喷射" });
        if !emission_in_basic {
            engine.add(25, "环保标准", emission);
        }
        groups.push(engine.done("发动机"));
    }

    let motor = match t.power {
        Power::Electric {
            kw,
            nm,
            motors,
            battery_kwh,
            range_km,
        } => Some((kw, nm, motors, battery_kwh, range_km)),
        Power::Ice {
            motor_kw: Some(kw), ..
        } => Some((kw, kw * 2, 1, "18.3", 110)),
        Power::Ice { .. } => None,
    };
    if let Some((kw, nm, motors, battery, range)) = motor {
        let mut group = Group::new(rng);
        group
            .add(76, "电机类型", "永磁同步")
            .add(59, "电动机总功率(kW)", kw.to_string())
            .add(60, "电动机总扭矩(N·m)", nm.to_string())
            .add(
                82,
                "驱动电机数",
                ["单电机", "双电机", "三电机"][usize::from(motors.clamp(1, 3)) - 1],
            )
            .add(
                83,
                "电机布局",
                if motors > 1 {
                    "前置+后置"
                } else {
                    "前置"
                },
            )
            .add(
                79,
                "电池类型",
                if kw > 300 {
                    "三元锂电池"
                } else {
                    "磷酸铁锂电池"
                },
            )
            .add(64, "电池能量(kWh)", battery)
            .add(61, "CLTC纯电续航里程(km)", range.to_string())
            .add(84, "快充时间(小时)", "0.5");
        groups.push(group.done("电动机"));
    }

    let mut gearbox = Group::new(rng);
    gearbox
        .add(100, "简称", t.gearbox.short)
        .add(41, "挡位个数", t.gearbox.gears)
        .add(40, "变速箱类型", t.gearbox.kind);
    groups.push(gearbox.done("变速箱"));

    let mut chassis = Group::new(rng);
    chassis
        .add(42, "驱动方式", t.drive.cn)
        .add(62, "四驱形式", t.drive.awd)
        .add(43, "前悬架类型", "麦弗逊式独立悬架")
        .add(44, "后悬架类型", "多连杆独立悬架")
        .add(46, "助力类型", "电动助力");
    groups.push(chassis.done("底盘转向"));

    let tyre = format!(
        "{}/{} R{}",
        205 + (width % 7) * 10,
        45 + (height % 3) * 5,
        17 + width % 3
    );
    let mut wheels = Group::new(rng);
    wheels
        .add(47, "前制动器类型", "通风盘式")
        .add(48, "后制动器类型", "盘式")
        .add(56, "驻车制动类型", "电子驻车")
        .add(49, "前轮胎规格", tyre.clone())
        .add(50, "后轮胎规格", tyre);
    groups.push(wheels.done("车轮制动"));

    SpecTable {
        specid,
        paramtypeitems: groups,
    }
}
