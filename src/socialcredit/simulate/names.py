"""Frequency tables for synthetic Chinese names: surnames with their share of the population, and
common given-name characters, each with its pinyin.

Why a table of our own rather than a name generator: the population is drawn with arrays (one
index per citizen into these tables), and a name needs its characters and its pinyin to agree,
which generic fake-name lists do not guarantee. Surnames and name characters are not personal data;
the surname shares are the published national ranking (per cent of the population, rounded), the
given-name characters are ordered from most to least common and weighted by rank.
"""

from __future__ import annotations

# surname, pinyin, share of the population in per cent
SURNAMES: tuple[tuple[str, str, float], ...] = (
    ("王", "Wang", 7.17), ("李", "Li", 7.00), ("张", "Zhang", 6.74), ("刘", "Liu", 5.10), ("陈", "Chen", 4.61),
    ("杨", "Yang", 3.22), ("黄", "Huang", 2.45), ("赵", "Zhao", 2.00), ("吴", "Wu", 2.00), ("周", "Zhou", 1.90),
    ("徐", "Xu", 1.45), ("孙", "Sun", 1.38), ("马", "Ma", 1.29), ("朱", "Zhu", 1.28), ("胡", "Hu", 1.16),
    ("郭", "Guo", 1.13), ("何", "He", 1.06), ("林", "Lin", 1.13), ("高", "Gao", 1.00), ("罗", "Luo", 0.95),
    ("郑", "Zheng", 0.93), ("梁", "Liang", 0.85), ("谢", "Xie", 0.76), ("宋", "Song", 0.70), ("唐", "Tang", 0.69),
    ("许", "Xu", 0.66), ("韩", "Han", 0.61), ("冯", "Feng", 0.62), ("邓", "Deng", 0.62), ("曹", "Cao", 0.60),
    ("彭", "Peng", 0.58), ("曾", "Zeng", 0.58), ("肖", "Xiao", 0.56), ("田", "Tian", 0.52), ("董", "Dong", 0.51),
    ("袁", "Yuan", 0.50), ("潘", "Pan", 0.52), ("于", "Yu", 0.48), ("蒋", "Jiang", 0.48), ("蔡", "Cai", 0.53),
    ("余", "Yu", 0.48), ("杜", "Du", 0.47), ("叶", "Ye", 0.48), ("程", "Cheng", 0.45), ("苏", "Su", 0.46),
    ("魏", "Wei", 0.45), ("吕", "Lü", 0.45), ("丁", "Ding", 0.43), ("任", "Ren", 0.41), ("沈", "Shen", 0.41),
    ("姚", "Yao", 0.40), ("卢", "Lu", 0.40), ("姜", "Jiang", 0.39), ("崔", "Cui", 0.38), ("钟", "Zhong", 0.40),
    ("谭", "Tan", 0.38), ("陆", "Lu", 0.36), ("汪", "Wang", 0.36), ("范", "Fan", 0.36), ("金", "Jin", 0.35),
    ("石", "Shi", 0.34), ("廖", "Liao", 0.37), ("贾", "Jia", 0.33), ("夏", "Xia", 0.32), ("韦", "Wei", 0.32),
    ("付", "Fu", 0.40), ("方", "Fang", 0.31), ("白", "Bai", 0.28), ("邹", "Zou", 0.30), ("孟", "Meng", 0.29),
    ("熊", "Xiong", 0.29), ("秦", "Qin", 0.29), ("邱", "Qiu", 0.32), ("江", "Jiang", 0.28), ("尹", "Yin", 0.26),
    ("薛", "Xue", 0.26), ("闫", "Yan", 0.27), ("段", "Duan", 0.24), ("雷", "Lei", 0.24), ("侯", "Hou", 0.30),
    ("龙", "Long", 0.21), ("史", "Shi", 0.21), ("陶", "Tao", 0.21), ("黎", "Li", 0.22), ("贺", "He", 0.21),
    ("顾", "Gu", 0.20), ("毛", "Mao", 0.20), ("郝", "Hao", 0.20), ("龚", "Gong", 0.20), ("邵", "Shao", 0.20),
    ("万", "Wan", 0.19), ("钱", "Qian", 0.19), ("严", "Yan", 0.19), ("覃", "Qin", 0.18), ("武", "Wu", 0.18),
    ("戴", "Dai", 0.34), ("莫", "Mo", 0.18), ("孔", "Kong", 0.17), ("向", "Xiang", 0.17), ("汤", "Tang", 0.17),
    ("常", "Chang", 0.16), ("温", "Wen", 0.16), ("康", "Kang", 0.16), ("施", "Shi", 0.15), ("文", "Wen", 0.15),
    ("牛", "Niu", 0.15), ("樊", "Fan", 0.15), ("葛", "Ge", 0.15), ("邢", "Xing", 0.14), ("安", "An", 0.13),
    ("齐", "Qi", 0.13), ("易", "Yi", 0.13), ("乔", "Qiao", 0.13), ("伍", "Wu", 0.13), ("庞", "Pang", 0.13),
    ("颜", "Yan", 0.12), ("倪", "Ni", 0.12), ("庄", "Zhuang", 0.12), ("聂", "Nie", 0.12), ("章", "Zhang", 0.12),
    ("鲁", "Lu", 0.11), ("岳", "Yue", 0.11), ("欧阳", "Ouyang", 0.05), ("司马", "Sima", 0.01),
    ("上官", "Shangguan", 0.01), ("诸葛", "Zhuge", 0.01),
)  # fmt: skip

# given-name character, pinyin, leaning (m: mostly men, f: mostly women, n: either); commonest first
GIVEN: tuple[tuple[str, str, str], ...] = (
    ("伟", "wei", "m"), ("芳", "fang", "f"), ("娜", "na", "f"), ("敏", "min", "f"), ("静", "jing", "f"),
    ("强", "qiang", "m"), ("磊", "lei", "m"), ("军", "jun", "m"), ("洋", "yang", "n"), ("勇", "yong", "m"),
    ("艳", "yan", "f"), ("杰", "jie", "m"), ("娟", "juan", "f"), ("涛", "tao", "m"), ("明", "ming", "n"),
    ("超", "chao", "m"), ("秀", "xiu", "f"), ("霞", "xia", "f"), ("平", "ping", "n"), ("刚", "gang", "m"),
    ("丽", "li", "f"), ("英", "ying", "f"), ("华", "hua", "n"), ("文", "wen", "n"), ("辉", "hui", "m"),
    ("建", "jian", "m"), ("玉", "yu", "f"), ("红", "hong", "f"), ("国", "guo", "m"), ("燕", "yan", "f"),
    ("鹏", "peng", "m"), ("玲", "ling", "f"), ("飞", "fei", "m"), ("桂", "gui", "f"), ("晓", "xiao", "n"),
    ("鑫", "xin", "m"), ("波", "bo", "m"), ("兰", "lan", "f"), ("斌", "bin", "m"), ("宇", "yu", "m"),
    ("丹", "dan", "f"), ("浩", "hao", "m"), ("萍", "ping", "f"), ("凯", "kai", "m"), ("梅", "mei", "f"),
    ("海", "hai", "m"), ("健", "jian", "m"), ("莉", "li", "f"), ("俊", "jun", "m"), ("婷", "ting", "f"),
    ("志", "zhi", "m"), ("春", "chun", "n"), ("晶", "jing", "f"), ("亮", "liang", "m"), ("颖", "ying", "f"),
    ("林", "lin", "n"), ("雪", "xue", "f"), ("成", "cheng", "m"), ("慧", "hui", "f"), ("峰", "feng", "m"),
    ("佳", "jia", "n"), ("倩", "qian", "f"), ("永", "yong", "m"), ("琴", "qin", "f"), ("东", "dong", "m"),
    ("云", "yun", "n"), ("晨", "chen", "n"), ("洁", "jie", "f"), ("瑞", "rui", "m"), ("淑", "shu", "f"),
    ("龙", "long", "m"), ("莹", "ying", "f"), ("旭", "xu", "m"), ("琳", "lin", "f"), ("帅", "shuai", "m"),
    ("欣", "xin", "f"), ("兵", "bing", "m"), ("宁", "ning", "n"), ("博", "bo", "m"), ("凤", "feng", "f"),
    ("阳", "yang", "n"), ("珍", "zhen", "f"), ("家", "jia", "m"), ("小", "xiao", "n"), ("德", "de", "m"),
    ("璐", "lu", "f"), ("荣", "rong", "n"), ("瑶", "yao", "f"), ("福", "fu", "m"), ("怡", "yi", "f"),
    ("生", "sheng", "m"), ("思", "si", "n"), ("振", "zhen", "m"), ("雨", "yu", "f"), ("天", "tian", "m"),
    ("诗", "shi", "f"), ("子", "zi", "n"), ("涵", "han", "f"), ("睿", "rui", "m"), ("梦", "meng", "f"),
    ("轩", "xuan", "m"), ("悦", "yue", "f"), ("泽", "ze", "m"), ("婉", "wan", "f"), ("宏", "hong", "m"),
    ("蕾", "lei", "f"), ("毅", "yi", "m"), ("薇", "wei", "f"), ("豪", "hao", "m"), ("菲", "fei", "f"),
    ("鸿", "hong", "m"), ("雅", "ya", "f"), ("立", "li", "m"), ("琪", "qi", "f"), ("光", "guang", "m"),
    ("月", "yue", "f"), ("新", "xin", "n"), ("露", "lu", "f"), ("金", "jin", "n"), ("彤", "tong", "f"),
    ("山", "shan", "m"), ("妍", "yan", "f"), ("世", "shi", "m"), ("芬", "fen", "f"), ("兴", "xing", "m"),
    ("翠", "cui", "f"), ("良", "liang", "m"), ("香", "xiang", "f"), ("义", "yi", "m"), ("美", "mei", "f"),
    ("胜", "sheng", "m"), ("蓉", "rong", "f"), ("祥", "xiang", "m"), ("媛", "yuan", "f"), ("嘉", "jia", "n"),
    ("萱", "xuan", "f"), ("皓", "hao", "m"), ("晴", "qing", "f"), ("昊", "hao", "m"), ("冰", "bing", "n"),
    ("哲", "zhe", "m"), ("爱", "ai", "f"), ("航", "hang", "m"), ("荷", "he", "f"), ("铭", "ming", "m"),
    ("安", "an", "n"), ("庆", "qing", "m"), ("然", "ran", "n"), ("中", "zhong", "m"), ("恩", "en", "n"),
    ("武", "wu", "m"),
)  # fmt: skip
