//! The words the simulator builds listings from: the marks and models of
//! fixtures/upstream/filters.json with their Chinese names, trims, engines and
//! gearboxes, cities, colours and seller phrases.

pub(crate) struct Model {
    pub mark: &'static str,
    /// As spelled in `/filters` (mixed English and Chinese, like the real feed).
    pub model: &'static str,
    /// The Chinese name that starts titles and 车型名称.
    pub cn: &'static str,
    pub maker: &'static str,
    pub class: &'static str,
    pub body: &'static str,
    pub structure: &'static str,
    pub since: u16,
    /// Length, width, height, wheelbase (mm), kerb weight (kg).
    pub dims: [u16; 5],
    pub trims: &'static [Trim],
}

pub(crate) struct Trim {
    pub name: &'static str,
    pub power: Power,
    pub gearbox: &'static Gearbox,
    pub drive: &'static Drive,
    /// Manufacturer's price when new, yuan.
    pub msrp: u32,
}

#[derive(Clone, Copy)]
pub(crate) enum Power {
    Ice {
        fuel: Fuel,
        ml: u32,
        code: &'static str,
        turbo: bool,
        cylinders: u8,
        ps: u32,
        kw: u32,
        nm: u32,
        /// Plug-in hybrids also carry an electric motor (kW).
        motor_kw: Option<u32>,
    },
    Electric {
        kw: u32,
        nm: u32,
        motors: u8,
        battery_kwh: &'static str,
        range_km: u32,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fuel {
    Gasoline,
    Hybrid,
    PlugIn,
    Mild48,
}

impl Fuel {
    pub fn engine_type(self) -> &'static str {
        match self {
            Fuel::Gasoline => "Gasoline",
            Fuel::Hybrid => "Hybrid",
            Fuel::PlugIn => "Plug-in Hybrid",
            Fuel::Mild48 => "Gasoline + 48V Mild Hybrid",
        }
    }

    pub fn energy_cn(self) -> &'static str {
        match self {
            Fuel::Gasoline => "汽油",
            Fuel::Hybrid => "油电混合",
            Fuel::PlugIn => "插电式混合动力",
            Fuel::Mild48 => "汽油+48V轻混系统",
        }
    }
}

pub(crate) struct Gearbox {
    pub short: &'static str,
    pub kind: &'static str,
    pub gears: &'static str,
    pub manual: bool,
}

pub(crate) struct Drive {
    pub en: &'static str,
    pub cn: &'static str,
    pub awd: &'static str,
}

pub(crate) const DCT7: Gearbox = Gearbox {
    short: "7挡湿式双离合",
    kind: "湿式双离合变速箱(DCT)",
    gears: "7",
    manual: false,
};
pub(crate) const AT8: Gearbox = Gearbox {
    short: "8挡手自一体",
    kind: "自动变速箱(AT)",
    gears: "8",
    manual: false,
};
pub(crate) const AT6: Gearbox = Gearbox {
    short: "6挡手自一体",
    kind: "自动变速箱(AT)",
    gears: "6",
    manual: false,
};
pub(crate) const CVT: Gearbox = Gearbox {
    short: "CVT无级变速(模拟10挡)",
    kind: "无级变速箱(CVT)",
    gears: "-",
    manual: false,
};
pub(crate) const ECVT: Gearbox = Gearbox {
    short: "E-CVT无级变速",
    kind: "电子无级变速箱(E-CVT)",
    gears: "-",
    manual: false,
};
pub(crate) const DHT: Gearbox = Gearbox {
    short: "DHT",
    kind: "专用混合动力变速箱(DHT)",
    gears: "1",
    manual: false,
};
pub(crate) const EV1: Gearbox = Gearbox {
    short: "电动车单速变速箱",
    kind: "固定齿比变速箱",
    gears: "1",
    manual: false,
};
pub(crate) const MT5: Gearbox = Gearbox {
    short: "5挡手动",
    kind: "手动变速箱(MT)",
    gears: "5",
    manual: true,
};

pub(crate) const FWD: Drive = Drive {
    en: "FWD",
    cn: "前置前驱",
    awd: "-",
};
pub(crate) const AWD: Drive = Drive {
    en: "AWD",
    cn: "前置四驱",
    awd: "适时四驱",
};
pub(crate) const RWD_EV: Drive = Drive {
    en: "RWD",
    cn: "后置后驱",
    awd: "-",
};
pub(crate) const AWD_DUAL: Drive = Drive {
    en: "AWD (dual-motor)",
    cn: "双电机四驱",
    awd: "电动四驱",
};
pub(crate) const AWD_TRI: Drive = Drive {
    en: "AWD (tri-motor)",
    cn: "三电机四驱",
    awd: "电动四驱",
};

const fn ice(fuel: Fuel, ml: u32, code: &'static str, turbo: bool, ps: u32, nm: u32) -> Power {
    Power::Ice {
        fuel,
        ml,
        code,
        turbo,
        cylinders: 4,
        ps,
        kw: ps * 736 / 1000,
        nm,
        motor_kw: None,
    }
}

const fn phev(ml: u32, code: &'static str, ps: u32, motor_kw: u32) -> Power {
    Power::Ice {
        fuel: Fuel::PlugIn,
        ml,
        code,
        turbo: false,
        cylinders: 4,
        ps,
        kw: ps * 736 / 1000,
        nm: 135,
        motor_kw: Some(motor_kw),
    }
}

const fn ev(kw: u32, nm: u32, motors: u8, battery_kwh: &'static str, range_km: u32) -> Power {
    Power::Electric {
        kw,
        nm,
        motors,
        battery_kwh,
        range_km,
    }
}

use Fuel::{Gasoline, Hybrid, Mild48};

#[rustfmt::skip]
pub(crate) static MODELS: &[Model] = &[
    Model { mark: "Volkswagen", model: "Passat", cn: "帕萨特", maker: "上汽大众", class: "中型车", body: "Sedan", structure: "4门5座三厢车", since: 2016, dims: [4948, 1836, 1469, 2871, 1590], trims: &[
        Trim { name: "330TSI 精英版", power: ice(Gasoline, 1984, "DKX", true, 186, 320), gearbox: &DCT7, drive: &FWD, msrp: 210_900 },
        Trim { name: "280TSI 商务版", power: ice(Gasoline, 1395, "DJS", true, 150, 250), gearbox: &DCT7, drive: &FWD, msrp: 185_900 },
    ]},
    Model { mark: "Volkswagen", model: "Tiguan L", cn: "途观L", maker: "上汽大众", class: "中型SUV", body: "Crossover/SUV", structure: "5门5座SUV", since: 2017, dims: [4735, 1859, 1673, 2791, 1640], trims: &[
        Trim { name: "330TSI 自动两驱智享版", power: ice(Gasoline, 1984, "DKV", true, 186, 320), gearbox: &DCT7, drive: &FWD, msrp: 224_800 },
        Trim { name: "380TSI 自动四驱R-Line旗舰版", power: ice(Gasoline, 1984, "DKW", true, 220, 350), gearbox: &DCT7, drive: &AWD, msrp: 295_800 },
    ]},
    Model { mark: "Volkswagen", model: "Magotan", cn: "迈腾", maker: "一汽-大众", class: "中型车", body: "Sedan", structure: "4门5座三厢车", since: 2017, dims: [4865, 1832, 1479, 2871, 1550], trims: &[
        Trim { name: "330TSI DSG 豪华型", power: ice(Gasoline, 1984, "DKX", true, 186, 320), gearbox: &DCT7, drive: &FWD, msrp: 229_900 },
        Trim { name: "200万辆纪念版 280TSI DSG 舒适型", power: ice(Gasoline, 1395, "DJS", true, 150, 250), gearbox: &DCT7, drive: &FWD, msrp: 189_900 },
    ]},
    Model { mark: "Volkswagen", model: "Lavida", cn: "朗逸", maker: "上汽大众", class: "紧凑型车", body: "Sedan", structure: "4门5座三厢车", since: 2015, dims: [4678, 1806, 1474, 2688, 1300], trims: &[
        Trim { name: "1.5L 自动舒适版", power: ice(Gasoline, 1498, "DMB", false, 113, 145), gearbox: &AT6, drive: &FWD, msrp: 121_900 },
        Trim { name: "1.5L 手动风尚版", power: ice(Gasoline, 1498, "DMB", false, 113, 145), gearbox: &MT5, drive: &FWD, msrp: 99_900 },
    ]},
    Model { mark: "Volkswagen", model: "Sagitar", cn: "速腾", maker: "一汽-大众", class: "紧凑型车", body: "Sedan", structure: "4门5座三厢车", since: 2015, dims: [4791, 1801, 1465, 2731, 1390], trims: &[
        Trim { name: "280TSI DSG 超越版", power: ice(Gasoline, 1395, "DJS", true, 150, 250), gearbox: &DCT7, drive: &FWD, msrp: 159_900 },
        Trim { name: "200TSI DSG 飞越版", power: ice(Gasoline, 1197, "DLS", true, 116, 200), gearbox: &DCT7, drive: &FWD, msrp: 139_900 },
    ]},
    Model { mark: "Volkswagen", model: "ID.4 CROZZ", cn: "ID.4 CROZZ", maker: "一汽-大众", class: "紧凑型SUV", body: "Crossover/SUV", structure: "5门5座SUV", since: 2021, dims: [4592, 1852, 1629, 2765, 2120], trims: &[
        Trim { name: "纯电智享版 PRO", power: ev(150, 310, 1, "84.8", 600), gearbox: &EV1, drive: &RWD_EV, msrp: 199_900 },
        Trim { name: "四驱高能版 PRIME", power: ev(230, 460, 2, "84.8", 550), gearbox: &EV1, drive: &AWD_DUAL, msrp: 259_900 },
    ]},
    Model { mark: "Toyota", model: "凯美瑞", cn: "凯美瑞", maker: "广汽丰田", class: "中型车", body: "Sedan", structure: "4门5座三厢车", since: 2018, dims: [4885, 1840, 1455, 2825, 1555], trims: &[
        Trim { name: "2.0G 豪华版", power: ice(Gasoline, 1987, "M20C", false, 178, 210), gearbox: &CVT, drive: &FWD, msrp: 199_800 },
        Trim { name: "双擎 2.5HG 豪华版", power: ice(Hybrid, 2487, "A25B", false, 178, 221), gearbox: &ECVT, drive: &FWD, msrp: 229_800 },
    ]},
    Model { mark: "Toyota", model: "RAV4荣放", cn: "RAV4荣放", maker: "一汽丰田", class: "紧凑型SUV", body: "Crossover/SUV", structure: "5门5座SUV", since: 2016, dims: [4600, 1855, 1680, 2690, 1540], trims: &[
        Trim { name: "2.0L CVT两驱风尚版", power: ice(Gasoline, 1987, "M20C", false, 171, 206), gearbox: &CVT, drive: &FWD, msrp: 179_800 },
        Trim { name: "双擎 2.5L E-CVT四驱精英版", power: ice(Hybrid, 2487, "A25D", false, 178, 221), gearbox: &ECVT, drive: &AWD, msrp: 239_800 },
    ]},
    Model { mark: "Toyota", model: "Corolla", cn: "卡罗拉", maker: "一汽丰田", class: "紧凑型车", body: "Sedan", structure: "4门5座三厢车", since: 2015, dims: [4635, 1780, 1455, 2700, 1335], trims: &[
        Trim { name: "1.2T S-CVT 精英版", power: ice(Gasoline, 1197, "9NR", true, 116, 185), gearbox: &CVT, drive: &FWD, msrp: 129_800 },
        Trim { name: "双擎 1.8L E-CVT 先锋版", power: ice(Hybrid, 1798, "8ZR", false, 98, 142), gearbox: &ECVT, drive: &FWD, msrp: 139_800 },
    ]},
    Model { mark: "Toyota", model: "Highlander", cn: "汉兰达", maker: "广汽丰田", class: "中型SUV", body: "Crossover/SUV", structure: "5门7座SUV", since: 2015, dims: [4965, 1930, 1750, 2850, 2010], trims: &[
        Trim { name: "2.0T 四驱豪华版 7座", power: ice(Gasoline, 1998, "8AR", true, 220, 350), gearbox: &AT8, drive: &AWD, msrp: 299_800 },
        Trim { name: "双擎 2.5L 两驱精英版 7座", power: ice(Hybrid, 2487, "A25B", false, 192, 236), gearbox: &ECVT, drive: &FWD, msrp: 269_800 },
    ]},
    Model { mark: "Toyota", model: "Crown Kluger", cn: "皇冠陆放", maker: "一汽丰田", class: "中型SUV", body: "Crossover/SUV", structure: "5门7座SUV", since: 2021, dims: [4965, 1930, 1750, 2850, 2080], trims: &[
        Trim { name: "2.5L HEV四驱豪华版", power: ice(Hybrid, 2487, "A25C", false, 192, 236), gearbox: &ECVT, drive: &AWD, msrp: 339_800 },
    ]},
    Model { mark: "BYD", model: "Han", cn: "汉", maker: "比亚迪", class: "中大型车", body: "Sedan", structure: "4门5座三厢车", since: 2020, dims: [4995, 1910, 1495, 2920, 2240], trims: &[
        Trim { name: "EV 创世版 610KM四驱旗舰型", power: ev(380, 700, 2, "85.4", 610), gearbox: &EV1, drive: &AWD_DUAL, msrp: 309_800 },
        Trim { name: "EV 506KM 豪华型", power: ev(163, 330, 1, "64.8", 506), gearbox: &EV1, drive: &FWD, msrp: 229_800 },
    ]},
    Model { mark: "BYD", model: "Qin PLUS", cn: "秦PLUS", maker: "比亚迪", class: "紧凑型车", body: "Sedan", structure: "4门5座三厢车", since: 2021, dims: [4765, 1837, 1495, 2718, 1500], trims: &[
        Trim { name: "DM-i 55KM 领先型", power: phev(1498, "BYD472QA", 110, 132), gearbox: &DHT, drive: &FWD, msrp: 112_800 },
        Trim { name: "EV 500KM 豪华型", power: ev(100, 180, 1, "57", 500), gearbox: &EV1, drive: &FWD, msrp: 139_800 },
    ]},
    Model { mark: "BYD", model: "Song PLUS DM-i", cn: "宋PLUS DM-i", maker: "比亚迪", class: "紧凑型SUV", body: "Crossover/SUV", structure: "5门5座SUV", since: 2021, dims: [4775, 1890, 1670, 2765, 1800], trims: &[
        Trim { name: "110KM 旗舰型", power: phev(1498, "BYD472QA", 110, 145), gearbox: &DHT, drive: &FWD, msrp: 169_800 },
    ]},
    Model { mark: "BYD", model: "Seal", cn: "海豹", maker: "比亚迪", class: "中型车", body: "Sedan", structure: "4门5座三厢车", since: 2022, dims: [4800, 1875, 1460, 2920, 1885], trims: &[
        Trim { name: "650KM 四驱性能版", power: ev(390, 670, 2, "82.5", 650), gearbox: &EV1, drive: &AWD_DUAL, msrp: 279_800 },
        Trim { name: "550KM 长续航后驱版", power: ev(150, 310, 1, "61.4", 550), gearbox: &EV1, drive: &RWD_EV, msrp: 209_800 },
    ]},
    Model { mark: "BYD", model: "Tang DM-i", cn: "唐DM-i", maker: "比亚迪", class: "中大型SUV", body: "Crossover/SUV", structure: "5门7座SUV", since: 2021, dims: [4870, 1950, 1725, 2820, 2200], trims: &[
        Trim { name: "112KM 尊享型", power: phev(1497, "BYD476ZQC", 139, 160), gearbox: &DHT, drive: &FWD, msrp: 219_800 },
    ]},
    Model { mark: "BYD", model: "海豹06", cn: "海豹06", maker: "比亚迪", class: "中型车", body: "Sedan", structure: "4门5座三厢车", since: 2024, dims: [4830, 1875, 1495, 2790, 1680], trims: &[
        Trim { name: "DM-i 120KM 尊贵型", power: phev(1498, "BYD472ZQD", 101, 160), gearbox: &DHT, drive: &FWD, msrp: 129_800 },
    ]},
    Model { mark: "Denza", model: "Denza D9", cn: "腾势D9", maker: "腾势汽车", class: "中大型MPV", body: "Minivan", structure: "5门7座MPV", since: 2022, dims: [5250, 1960, 1920, 3110, 2595], trims: &[
        Trim { name: "DM-i 970 四驱旗舰型", power: phev(1497, "BYD476ZQC", 139, 230), gearbox: &DHT, drive: &AWD_DUAL, msrp: 459_800 },
        Trim { name: "EV 600 四驱尊贵型", power: ev(390, 670, 2, "103", 600), gearbox: &EV1, drive: &AWD_DUAL, msrp: 469_800 },
    ]},
    Model { mark: "Denza", model: "腾势N8L", cn: "腾势N8L", maker: "腾势汽车", class: "中大型SUV", body: "Crossover/SUV", structure: "5门6座SUV", since: 2025, dims: [5200, 1999, 1820, 3075, 2690], trims: &[
        Trim { name: "DM 四驱旗舰型", power: phev(1998, "BYD487ZQD", 207, 500), gearbox: &DHT, drive: &AWD_TRI, msrp: 379_800 },
    ]},
    Model { mark: "Denza", model: "Denza Z9GT", cn: "腾势Z9GT", maker: "腾势汽车", class: "中大型车", body: "Hatchback", structure: "5门5座掀背车", since: 2024, dims: [5180, 1990, 1480, 3125, 2640], trims: &[
        Trim { name: "EV 630 三电机旗舰型", power: ev(710, 1000, 3, "100", 630), gearbox: &EV1, drive: &AWD_TRI, msrp: 399_800 },
    ]},
    Model { mark: "Zeekr", model: "001", cn: "极氪001", maker: "极氪", class: "中大型车", body: "Hatchback", structure: "5门5座掀背车", since: 2021, dims: [4977, 1999, 1560, 3005, 2290], trims: &[
        Trim { name: "WE版 100kWh 四驱", power: ev(400, 686, 2, "100", 656), gearbox: &EV1, drive: &AWD_DUAL, msrp: 299_000 },
        Trim { name: "YOU版 后驱", power: ev(310, 440, 1, "86", 705), gearbox: &EV1, drive: &RWD_EV, msrp: 269_000 },
    ]},
    Model { mark: "Zeekr", model: "009", cn: "极氪009", maker: "极氪", class: "中大型MPV", body: "Minivan", structure: "5门6座MPV", since: 2022, dims: [5209, 2024, 1848, 3205, 2830], trims: &[
        Trim { name: "WE版 四驱", power: ev(400, 686, 2, "116", 702), gearbox: &EV1, drive: &AWD_DUAL, msrp: 499_000 },
    ]},
    Model { mark: "Zeekr", model: "X", cn: "极氪X", maker: "极氪", class: "小型SUV", body: "Crossover/SUV", structure: "5门5座SUV", since: 2023, dims: [4450, 1836, 1572, 2750, 1885], trims: &[
        Trim { name: "四驱智驾版", power: ev(315, 543, 2, "66", 512), gearbox: &EV1, drive: &AWD_DUAL, msrp: 209_000 },
        Trim { name: "后驱智享版", power: ev(200, 343, 1, "66", 560), gearbox: &EV1, drive: &RWD_EV, msrp: 189_000 },
    ]},
    Model { mark: "Zeekr", model: "极氪007GT", cn: "极氪007GT", maker: "极氪", class: "中型车", body: "Hatchback", structure: "5门5座猎装车", since: 2025, dims: [4865, 1900, 1460, 2928, 2090], trims: &[
        Trim { name: "后驱智驾版", power: ev(310, 440, 1, "75", 705), gearbox: &EV1, drive: &RWD_EV, msrp: 209_900 },
    ]},
    Model { mark: "Hongqi", model: "Hongqi H5", cn: "红旗H5", maker: "一汽红旗", class: "中型车", body: "Sedan", structure: "4门5座三厢车", since: 2018, dims: [4988, 1875, 1470, 2875, 1570], trims: &[
        Trim { name: "1.5T 智联旗畅版", power: ice(Mild48, 1498, "CA4GB15TD", true, 169, 258), gearbox: &DCT7, drive: &FWD, msrp: 159_800 },
        Trim { name: "2.0T 智联旗享版", power: ice(Gasoline, 1989, "CA4GC20TD", true, 224, 340), gearbox: &AT8, drive: &FWD, msrp: 189_800 },
    ]},
    Model { mark: "Hongqi", model: "HS5", cn: "红旗HS5", maker: "一汽红旗", class: "中型SUV", body: "Crossover/SUV", structure: "5门5座SUV", since: 2019, dims: [4760, 1907, 1700, 2870, 1735], trims: &[
        Trim { name: "2.0T 旗领版", power: ice(Gasoline, 1989, "CA4GC20TD", true, 252, 380), gearbox: &AT6, drive: &AWD, msrp: 229_800 },
    ]},
    Model { mark: "Hongqi", model: "红旗金葵花国悦", cn: "红旗金葵花国悦", maker: "一汽红旗", class: "大型MPV", body: "Minivan", structure: "5门7座MPV", since: 2024, dims: [5283, 2025, 1890, 3200, 2870], trims: &[
        Trim { name: "2.0T PHEV 四驱尊享版", power: phev(1989, "CA4GC20TD", 252, 260), gearbox: &DHT, drive: &AWD, msrp: 699_800 },
    ]},
];

pub(crate) static COLORS: &[&str] = &[
    "White",
    "White",
    "White",
    "Black",
    "Black",
    "Silver",
    "Dark Gray",
    "Blue",
    "Red",
    "Brown",
    "Orange",
    "Yellow",
    "Green",
    "Purple",
    "Champagne",
    "Other",
];

pub(crate) static CITIES: &[(&str, &[&str])] = &[
    ("北京", &["朝阳", "海淀", "丰台", "通州", "大兴", "顺义"]),
    (
        "上海",
        &["浦东新区", "闵行", "徐汇", "嘉定", "松江", "宝山"],
    ),
    ("广州", &["天河", "白云", "番禺", "海珠"]),
    ("深圳", &["南山", "福田", "宝安", "龙岗"]),
    ("杭州", &["西湖", "萧山", "余杭", "拱墅"]),
    ("成都", &["武侯", "锦江", "成华", "双流"]),
    ("重庆", &["渝北", "江北", "九龙坡", "南岸"]),
    ("武汉", &["江汉", "洪山", "武昌"]),
    ("西安", &["雁塔", "未央", "长安"]),
    ("南京", &["江宁", "鼓楼", "秦淮"]),
    ("天津", &["滨海新区", "南开", "河西"]),
    ("苏州", &["工业园区", "吴中", "姑苏"]),
    ("郑州", &["金水", "二七", "郑东新区"]),
    ("长沙", &["岳麓", "雨花", "开福"]),
];

pub(crate) static DEALER_PHRASES: &[&str] = &[
    "车况精品，一手车，4S店定期保养。",
    "无事故无泡水无火烧，原版原漆，支持第三方检测。",
    "车况良好，手续齐全，欢迎到店看车。",
    "本店所有车辆均可按揭，首付低至两成，当天提车。",
    "原厂质保期内，享受一年或两万公里延保服务。",
    "内饰干净整洁，无烟车，轮胎八成新。",
    "专业评估师检测，提供详细检测报告，全国联保。",
    "支持置换，高价回收二手车，全程一对一服务。",
];

pub(crate) static PRIVATE_PHRASES: &[&str] = &[
    "个人一手车，家用代步，按时保养，无重大事故，手续齐全可过户。",
    "因换车出售，车况如图，诚心要的联系，中介勿扰。",
    "女士一手车，平时上下班使用，里程真实，随时可以看车。",
    "保养记录齐全，刚做完大保养，新换四条轮胎。",
    "价格可小刀，本地牌照，可协助过户提档。",
];

pub(crate) static CONTACTS: &[&str] = &["王先生", "李女士", "张经理", "刘先生", "陈女士", "杨先生"];
