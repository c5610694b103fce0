"""The RULER-style tasks' wording: headers, needles, questions and the words a key is drawn from.
Short on purpose: a case must fit a 128-token training window with room for haystack."""

from __future__ import annotations

NIAH_HEADER = "Special numbers are hidden in the text below. Remember them."
NIAH_NEEDLE = "One of the special numbers for {key} is {value}."
NIAH_QUESTION_ONE = "What is the special number for {keys}? The special number for {keys} is"
NIAH_QUESTION_MANY = "What are all the special numbers for {keys}? The special numbers for {keys} are"

VT_HEADER = "Track the variable assignments hidden in the text below."
VT_FIRST = "VAR {name} = {value}."
VT_LINK = "VAR {name} = VAR {previous}."
VT_QUESTION = "Which variables are assigned the value {value}? The variables assigned the value {value} are"

CWE_HEADER = "Below is a numbered list of words. Some words appear more often than others."
CWE_QUESTION = "What are the {n} most common words in the list above? The {n} most common words are"

KEY_WORDS = tuple(
    sorted(
        set(
            """
apple river garden window table chair bottle candle forest island mountain valley bridge castle
tower market school doctor farmer sailor pilot artist singer dancer writer teacher student queen
king horse tiger rabbit monkey eagle falcon dragon spider turtle dolphin whale shark salmon lemon
orange banana cherry grape melon pepper onion carrot potato tomato butter cheese bread honey sugar
coffee silver golden copper marble velvet cotton wool leather paper pencil basket blanket pillow
mirror ladder hammer needle anchor rocket planet comet meadow desert canyon harbor village city
palace temple museum library theater circus carnival festival winter summer autumn spring morning
evening shadow thunder rain storm cloud breeze ocean lake pond stream glacier volcano jungle prairie
violin guitar piano trumpet drum flute harp camera clock lantern compass wallet button ribbon jacket
helmet boot glove scarf crown jewel pearl diamond ruby emerald crystal feather pebble shell acorn
maple willow cedar oak pine birch tulip rose daisy lily orchid cactus mushroom walnut almond peanut
biscuit muffin pancake noodle pizza salad soup kettle teapot spoon fork plate bowl cup saucer napkin
towel soap brush comb razor blade arrow shield sword cannon wagon carriage sled canoe yacht ferry
tunnel fountain statue garage cellar attic balcony chimney fence gate path road highway airport
""".split()
        )
    )
)
"""Words a needle's key is drawn from (distinct within a case)."""
