"""The inline flag grammar and typed options of generation commands (docs/commands.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands.grammar import (
    ASPECT_RATIO_CHOICES,
    FLAG_HELP,
    FLAG_NAMES,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    STYLE_PRESET_CHOICES,
    GenerationOptions,
    check_options,
    format_flags,
    is_flag_token,
    normalize_text,
    options_from_typed,
    parse_prompt,
    suggest,
)
from bot.errors import InvalidInput, UserError
from bot.ideogram.models import (
    AspectRatioV3,
    ColorPaletteMember,
    ColorPalettePresetName,
    ColorPaletteWithMembers,
    ColorPaletteWithPresetName,
    MagicPromptOption,
    RenderingSpeed,
    ResolutionV3,
    StylePresetV3,
    StyleTypeV3,
)


def error_of(text: str, **kwargs: Any) -> str:
    """Return the message parse_prompt raises for ``text`` (failing if it accepts it)."""
    with pytest.raises(InvalidInput) as caught:
        parse_prompt(text, **kwargs)
    return str(caught.value)


def options_of(text: str, **kwargs: Any) -> GenerationOptions:
    return parse_prompt(text, **kwargs)[1]


# ------------------------------------------------------------------------------------------
# The example of the brief and the prompt itself


def test_the_example_splits_prompt_and_flags() -> None:
    """The prompt is the text before the first flag; each flag's value runs to the next."""
    prompt, options = parse_prompt(
        "a cat in a hat --ar 16:9 --seed 5 --no dogs, cats --transparent"
    )
    assert prompt == "a cat in a hat"
    assert options == GenerationOptions(
        aspect_ratio=AspectRatioV3.R_16x9, seed=5, negative_prompt="dogs, cats", transparent=True
    )


def test_text_without_flags_is_all_prompt_with_whitespace_normalised() -> None:
    assert parse_prompt("  a  cat\n\tin a   hat ") == ("a cat in a hat", GenerationOptions())


@pytest.mark.parametrize(
    "text",
    [
        "a state-of-the-art robot",
        "a--b c--d",
        "dash -- alone",
        "em — dash alone",
        "a ---triple dash",
        "numbers --5 are not flags",
        "snake_case --_x",
    ],
)
def test_double_dashes_inside_words_are_not_flags(text: str) -> None:
    """Only whitespace-separated tokens starting with -- (or —) and a letter are flags."""
    assert parse_prompt(text) == (text, GenerationOptions())


def test_em_dash_works_as_flag_prefix() -> None:
    """Phones turn -- into an em dash; it still starts a flag."""
    assert parse_prompt("a fox —ar 3:2 —seed 7") == (
        "a fox",
        GenerationOptions(aspect_ratio=AspectRatioV3.R_3x2, seed=7),
    )


def test_flag_names_are_case_insensitive() -> None:
    assert options_of("a fox --AR 3:2 --Seed 1").aspect_ratio is AspectRatioV3.R_3x2


def test_empty_prompt_is_refused_unless_optional() -> None:
    assert error_of("--ar 16:9").startswith("Please describe the image you want")
    assert error_of("   ").startswith("Please describe the image you want")
    assert parse_prompt("--seed 3", require_prompt=False) == ("", GenerationOptions(seed=3))
    assert parse_prompt("", require_prompt=False) == ("", GenerationOptions())


def test_too_long_prompt_names_length_and_limit() -> None:
    message = error_of("x" * (MAX_PROMPT_CHARS + 5))
    assert str(MAX_PROMPT_CHARS + 5) in message
    assert str(MAX_PROMPT_CHARS) in message
    assert parse_prompt("x" * MAX_PROMPT_CHARS)[0] == "x" * MAX_PROMPT_CHARS


# ------------------------------------------------------------------------------------------
# Each flag: accepted spellings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("--ar 16:9", AspectRatioV3.R_16x9),
        ("--ar 16x9", AspectRatioV3.R_16x9),
        ("--ar 16 x 9", AspectRatioV3.R_16x9),
        ("--ar 16X9", AspectRatioV3.R_16x9),
        ("--ar 16×9", AspectRatioV3.R_16x9),
        ("--ar 1:3", AspectRatioV3.R_1x3),
        ("--ar 10:16", AspectRatioV3.R_10x16),
        ("--ar 1:1", AspectRatioV3.R_1x1),
    ],
)
def test_ar_accepts_colon_x_and_spaced_forms(text: str, expected: AspectRatioV3) -> None:
    assert options_of(f"a boat {text}").aspect_ratio is expected


def test_every_aspect_ratio_choice_parses() -> None:
    assert ASPECT_RATIO_CHOICES[:3] == ["1:3", "3:1", "1:2"]
    for choice in ASPECT_RATIO_CHOICES:
        assert options_of(f"a --ar {choice}").aspect_ratio == AspectRatioV3(
            choice.replace(":", "x")
        )


@pytest.mark.parametrize("resolution", list(ResolutionV3))
def test_res_accepts_every_resolution(resolution: ResolutionV3) -> None:
    assert options_of(f"a boat --res {resolution.value}").resolution is resolution


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("--no dogs", "dogs"),
        ("--no dogs, cats", "dogs, cats"),
        ("--no  blurry   text,\nwatermark ", "blurry text, watermark"),
        ("--no state-of-the-art --seed 1", "state-of-the-art"),
    ],
)
def test_no_takes_free_text_up_to_the_next_flag(text: str, expected: str) -> None:
    assert options_of(f"a boat {text}").negative_prompt == expected


@pytest.mark.parametrize(
    ("value", "expected"), [("0", 0), ("42", 42), ("007", 7), (str(MAX_SEED), MAX_SEED)]
)
def test_seed_accepts_0_to_max(value: str, expected: int) -> None:
    assert options_of(f"a --seed {value}").seed == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("flash", RenderingSpeed.FLASH),
        ("TURBO", RenderingSpeed.TURBO),
        ("Default", RenderingSpeed.DEFAULT),
        ("quality", RenderingSpeed.QUALITY),
    ],
)
def test_speed_is_case_insensitive(value: str, expected: RenderingSpeed) -> None:
    assert options_of(f"a --speed {value}").rendering_speed is expected


@pytest.mark.parametrize("style", list(StyleTypeV3))
def test_style_accepts_each_style_type(style: StyleTypeV3) -> None:
    assert options_of(f"a --style {style.value.lower()}").style_type is style


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("OIL_PAINTING", StylePresetV3.OIL_PAINTING),
        ("oil painting", StylePresetV3.OIL_PAINTING),
        ("Oil-Painting", StylePresetV3.OIL_PAINTING),
        ("art-deco", StylePresetV3.ART_DECO),
        ("80s illustration", StylePresetV3.P_80S_ILLUSTRATION),
        ("children's book", StylePresetV3.CHILDRENS_BOOK),
        ("coloring book ii", StylePresetV3.COLORING_BOOK_II),
        ("graffiti 1", StylePresetV3.GRAFFITI_I),
        ("c4d cartoon", StylePresetV3.C4D_CARTOON),
    ],
)
def test_preset_accepts_spaces_hyphens_and_any_case(value: str, expected: StylePresetV3) -> None:
    assert options_of(f"a --preset {value}").style_preset is expected


def test_every_style_preset_human_name_parses_back() -> None:
    assert "Oil Painting" in STYLE_PRESET_CHOICES
    assert len(STYLE_PRESET_CHOICES) == len(StylePresetV3)
    parsed = [options_of(f"a --preset {name}").style_preset for name in STYLE_PRESET_CHOICES]
    assert parsed == list(StylePresetV3)


@pytest.mark.parametrize("magic", list(MagicPromptOption))
def test_magic_accepts_auto_on_off(magic: MagicPromptOption) -> None:
    assert options_of(f"a --magic {magic.value.lower()}").magic_prompt is magic


def test_n_is_bounded_by_the_server_maximum() -> None:
    assert options_of("a --n 1").num_images == 1
    assert options_of("a --n 4").num_images == 4
    assert options_of("a --n 8", max_num_images=8).num_images == 8
    message = error_of("a --n 5")
    assert message == (
        "`--n 5` is not valid: the number of images must be a whole number from 1 to 4."
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ember", ColorPaletteWithPresetName(name=ColorPalettePresetName.EMBER)),
        ("ULTRAMARINE", ColorPaletteWithPresetName(name=ColorPalettePresetName.ULTRAMARINE)),
        (
            "#FF0000",
            ColorPaletteWithMembers(members=(ColorPaletteMember(color_hex="#FF0000"),)),
        ),
        (
            "#FF0000:0.5,#00ff00",
            ColorPaletteWithMembers(
                members=(
                    ColorPaletteMember(color_hex="#FF0000", color_weight=0.5),
                    ColorPaletteMember(color_hex="#00ff00"),
                )
            ),
        ),
        (
            "#FF0000:1, #0000FF:0.05",
            ColorPaletteWithMembers(
                members=(
                    ColorPaletteMember(color_hex="#FF0000", color_weight=1.0),
                    ColorPaletteMember(color_hex="#0000FF", color_weight=0.05),
                )
            ),
        ),
        (
            "ABCDEF",
            ColorPaletteWithMembers(members=(ColorPaletteMember(color_hex="#ABCDEF"),)),
        ),
    ],
)
def test_palette_accepts_presets_and_colours(value: str, expected: object) -> None:
    assert options_of(f"a --palette {value}").color_palette == expected


def test_weight_and_transparent() -> None:
    assert options_of("a --weight 1").image_weight == 1
    assert options_of("a --weight 100").image_weight == 100
    assert options_of("a --transparent").transparent is True
    assert options_of("a").transparent is False


# ------------------------------------------------------------------------------------------
# Error messages: one sentence naming the valid values and the closest


def test_ar_16_8_suggests_16_9_and_16_10() -> None:
    message = error_of("a --ar 16:8")
    assert message.startswith(
        "`--ar 16:8` is not a supported aspect ratio. Did you mean 16:9 or 16:10? Valid: 1:3, 3:1,"
    )
    assert message.endswith("1:1.")


def test_unknown_flag_aspect_suggests_ar() -> None:
    message = error_of("a cat --aspect 16:9")
    assert message.startswith("Unknown flag `--aspect`. Did you mean `--ar`? Flags: --ar, --res,")
    assert "--transparent" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a --speed fsat", "Did you mean flash?"),
        ("a --speed qualty", "Did you mean quality?"),
        ("a --style realstic", "Did you mean realistic?"),
        ("a --style photo", "Did you mean realistic?"),
        ("a --magic yes", "Did you mean on?"),
        ("a --preset watercolour", "Did you mean Watercolor"),
        ("a --preset oil paint", "Did you mean Oil Painting"),
        ("a --palette embr", "Did you mean ember?"),
        ("a --res 1000x1000", "Did you mean 1024x1024"),
        ("a --sed 5", "Did you mean `--seed`"),
        ("a --transparant", "Did you mean `--transparent`?"),
        ("a --colour ember", "Did you mean `--palette`?"),
        ("a --negative dogs", "Did you mean `--no`?"),
        ("a --ar16:9", "Did you mean `--ar 16:9`?"),
        ("a --seed=5", "Did you mean `--seed 5`?"),
    ],
)
def test_bad_values_and_flags_suggest_the_closest(text: str, expected: str) -> None:
    assert expected in error_of(text)


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("a --speed warp", "Valid: flash, turbo, default, quality."),
        ("a --style neon", "Valid: auto, general, realistic, design, fiction."),
        ("a --magic maybe", "Valid: auto, on, off."),
        ("a --preset zzz", "Oil Painting"),
        ("a --res 1x1", "1024x1024"),
        ("a --palette zzz", "ember, fresh, jungle"),
    ],
)
def test_bad_values_name_the_valid_ones(text: str, valid: str) -> None:
    assert valid in error_of(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a --seed -1", "`--seed -1` is not valid: the seed must be a whole number from 0 to"),
        ("a --seed 2147483648", "from 0 to 2147483647."),
        ("a --seed abc", "`--seed abc` is not valid"),
        ("a --seed 1" + "0" * 5000, "is not valid: the seed must be"),
        ("a --seed ٣", "is not valid"),
        ("a --weight 0", "the image weight must be a whole number from 1 to 100."),
        ("a --weight 101", "from 1 to 100."),
        ("a --n 0", "the number of images must be a whole number from 1 to 4."),
        ("a --palette #FF0000:2", "the weight of #FF0000 must be a number from 0.05 to 1."),
        ("a --palette #FF0000:0.01", "from 0.05 to 1."),
        ("a --palette #FF0000:nan", "from 0.05 to 1."),
        ("a --palette #GG0000", "`#GG0000` is not a `#RRGGBB` colour"),
        ("a --palette #FF0000,", "is not a colour palette"),
    ],
)
def test_bad_numbers_name_the_range(text: str, expected: str) -> None:
    assert expected in error_of(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a --seed", "`--seed` needs a value, e.g. `--seed 42`."),
        ("a --ar --seed 3", "`--ar` needs a value, e.g. `--ar 16:9`."),
        ("a --no", "`--no` needs a value"),
        ("a —palette", "`--palette` needs a value"),
    ],
)
def test_missing_value(text: str, expected: str) -> None:
    assert error_of(text) == expected or expected in error_of(text)


def test_prompt_after_a_flag_value_is_pointed_out() -> None:
    """A value followed by more words: tell the user to put the prompt first."""
    assert error_of("--seed 5 a cat in a hat") == (
        "Text after `--seed 5` (`a cat in a hat`) is not part of the flag; please put your"
        " prompt before the flags."
    )
    assert "Text after `--ar 16 x 9` (`cats`)" in error_of("a --ar 16 x 9 cats")
    assert "Text after `--preset oil painting` (`of a cat`)" in error_of(
        "a --preset oil painting of a cat"
    )
    assert "takes no value" in error_of("a --transparent please")


def test_a_flag_given_twice_is_refused() -> None:
    assert error_of("a --seed 1 --seed 2") == "`--seed` is given twice; please give it once."
    assert "given twice" in error_of("a --ar 1:1 —ar 16:9")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a --ar 1:1 --res 1024x1024", "Please use either `--ar` or `--res`, not both."),
        ("a --transparent --speed flash", "`--transparent` does not work with `--speed flash`"),
        ("a --res 1024x1024 --transparent", "`--transparent` takes an aspect ratio (`--ar`)"),
        ("a --transparent --style design", "can't be combined with `--style`"),
        ("a --transparent --preset aura --palette ember", "`--preset` or `--palette`"),
    ],
)
def test_conflicting_flags(text: str, expected: str) -> None:
    assert expected in error_of(text)


def test_transparent_works_with_its_own_fields() -> None:
    options = options_of("a --transparent --ar 1:1 --speed quality --magic off --n 2 --seed 1")
    assert options.transparent and options.rendering_speed is RenderingSpeed.QUALITY


def test_allow_limits_the_flags_of_a_command() -> None:
    allow = frozenset({"seed", "magic"})
    assert options_of("a --seed 1", allow=allow).seed == 1
    assert error_of("a --ar 1:1", allow=allow, command="/upscale") == (
        "`--ar` can't be used with `/upscale`. Flags it takes: --seed, --magic."
    )
    assert error_of("a --ar 1:1", allow=allow) == (
        "`--ar` can't be used with this command. Flags it takes: --seed, --magic."
    )
    assert error_of("a --aspect 1:1", allow=allow) == (
        "Unknown flag `--aspect`. Flags: --seed, --magic."
    )
    assert error_of("a --sed 1", allow=allow).startswith(
        "Unknown flag `--sed`. Did you mean `--seed`?"
    )
    assert "takes no flags" in error_of("a --seed 1", allow=frozenset())
    assert options_of("a --seed 1", allow=frozenset({"--seed"})).seed == 1


def test_long_bad_values_are_shortened_and_backticks_removed() -> None:
    message = error_of("a --speed " + "`x" * 200)
    assert "``" not in message.replace("`--speed ", "")
    assert len(message) < 300


# ------------------------------------------------------------------------------------------
# Typed options (Discord) share the validators


def test_typed_options_map_discord_names() -> None:
    options = options_from_typed(
        {
            "prompt": "ignored",
            "aspect_ratio": "16:9",
            "negative_prompt": "  dogs,  cats ",
            "seed": 5,
            "speed": "Turbo",
            "style": "design",
            "preset": "Oil Painting",
            "magic_prompt": "off",
            "num_images": 3,
            "palette": "ember",
            "transparent": False,
            "image_weight": 40,
            "resolution": None,
        }
    )
    assert options == GenerationOptions(
        aspect_ratio=AspectRatioV3.R_16x9,
        negative_prompt="dogs, cats",
        seed=5,
        rendering_speed=RenderingSpeed.TURBO,
        style_type=StyleTypeV3.DESIGN,
        style_preset=StylePresetV3.OIL_PAINTING,
        magic_prompt=MagicPromptOption.OFF,
        num_images=3,
        color_palette=ColorPaletteWithPresetName(name=ColorPalettePresetName.EMBER),
        image_weight=40,
    )
    assert options_from_typed({"resolution": "1024x1024"}).resolution is ResolutionV3.R_1024x1024
    assert options_from_typed({"negative_prompt": "   "}) == GenerationOptions()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"aspect_ratio": "16:8"}, "`aspect_ratio: 16:8` is not a supported aspect ratio. Did you"),
        ({"speed": "fsat"}, "`speed: fsat` is not a valid rendering speed. Did you mean flash?"),
        ({"seed": -1}, "`seed: -1` is not valid: the seed must be a whole number from 0 to"),
        ({"num_images": 9}, "the number of images must be a whole number from 1 to 4."),
        ({"seed": True}, "is not a valid value"),
        ({"seed": 1.5}, "is not a valid value"),
        ({"transparent": "yes"}, "`transparent` must be true or false."),
        ({"aspect_ratio": "1:1", "resolution": "1024x1024"}, "not both"),
        ({"transparent": True, "speed": "flash"}, "`--speed flash`"),
    ],
)
def test_typed_options_give_the_flag_messages(values: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        options_from_typed(values)
    assert expected in str(caught.value)


# ------------------------------------------------------------------------------------------
# Options value: merge and persistence


def test_merged_override_wins_and_transparent_ors() -> None:
    base = GenerationOptions(
        aspect_ratio=AspectRatioV3.R_1x1, seed=1, rendering_speed=RenderingSpeed.TURBO
    )
    override = GenerationOptions(seed=2, transparent=True)
    assert base.merged(override) == GenerationOptions(
        aspect_ratio=AspectRatioV3.R_1x1,
        seed=2,
        rendering_speed=RenderingSpeed.TURBO,
        transparent=True,
    )
    assert GenerationOptions(transparent=True).merged(GenerationOptions()).transparent


def test_merged_resolution_replaces_a_default_aspect_ratio() -> None:
    base = GenerationOptions(aspect_ratio=AspectRatioV3.R_1x1)
    merged = base.merged(GenerationOptions(resolution=ResolutionV3.R_1024x1024))
    assert merged.aspect_ratio is None and merged.resolution is ResolutionV3.R_1024x1024
    back = merged.merged(GenerationOptions(aspect_ratio=AspectRatioV3.R_16x9))
    assert back.resolution is None and back.aspect_ratio is AspectRatioV3.R_16x9
    check_options(back)


def test_to_json_is_plain_json() -> None:
    options = options_of("a --ar 16:9 --palette #FF0000:0.5,#00FF00 --speed turbo --n 2")
    data = options.to_json()
    assert data == {
        "aspect_ratio": "16x9",
        "rendering_speed": "TURBO",
        "color_palette": {
            "members": [{"color_hex": "#FF0000", "color_weight": 0.5}, {"color_hex": "#00FF00"}]
        },
        "num_images": 2,
    }
    assert GenerationOptions.from_json(json.loads(json.dumps(data))) == options
    assert GenerationOptions.from_json({}) == GenerationOptions()


def test_from_json_refuses_corrupt_records() -> None:
    with pytest.raises(ValueError):
        GenerationOptions.from_json({"aspect_ratio": "7x7"})
    with pytest.raises(ValueError):
        GenerationOptions.from_json({"seed": "5"})


def test_format_flags_writes_the_canonical_order() -> None:
    options = options_of(
        "a --transparent --n 2 --magic off --seed 9 --no  dogs  --ar 16 x 9 --speed Quality"
    )
    assert format_flags("a  cat", options) == (
        "a cat --ar 16:9 --no dogs --seed 9 --speed quality --magic off --n 2 --transparent"
    )
    assert format_flags("", GenerationOptions()) == ""


def test_help_and_helpers() -> None:
    assert [row[0].split()[0] for row in FLAG_HELP] == [f"--{name}" for name in FLAG_NAMES]
    assert all(len(row) == 3 and all(row) for row in FLAG_HELP)
    assert suggest("16:8", ASPECT_RATIO_CHOICES) == ["16:9", "16:10"]
    assert suggest("OIL PAINTNG", STYLE_PRESET_CHOICES, 1) == ["Oil Painting"]
    assert suggest("zzzz", ["flash"]) == []
    assert is_flag_token("--ar") and is_flag_token("—ar")
    assert not is_flag_token("a--b") and not is_flag_token("--5") and not is_flag_token("--")


# ------------------------------------------------------------------------------------------
# Properties

_WHITESPACE = st.sampled_from([" ", "  ", "\t", "\n", " \u3000 "])
_word = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12
).filter(lambda w: not any(c.isspace() for c in w) and not is_flag_token(w))
_tricky_word = st.sampled_from(["state-of-the-art", "a--b", "--", "—", "-", "---x", "--9", "`"])


@st.composite
def _texts(draw: st.DrawFn, max_words: int) -> str:
    """Free text without flag-like tokens, with irregular whitespace."""
    words = draw(st.lists(st.one_of(_word, _tricky_word), min_size=1, max_size=max_words))
    out = words[0]
    for word in words[1:]:
        out += draw(_WHITESPACE) + word
    return draw(_WHITESPACE) + out if draw(st.booleans()) else out


_members = st.lists(
    st.builds(
        ColorPaletteMember,
        color_hex=st.text(alphabet="0123456789abcdefABCDEF", min_size=6, max_size=6).map(
            lambda h: "#" + h
        ),
        color_weight=st.none() | st.floats(min_value=0.05, max_value=1.0),
    ),
    min_size=1,
    max_size=5,
).map(lambda members: ColorPaletteWithMembers(members=tuple(members)))
_palettes = st.one_of(
    st.sampled_from(list(ColorPalettePresetName)).map(lambda n: ColorPaletteWithPresetName(name=n)),
    _members,
)


@st.composite
def _valid_options(draw: st.DrawFn) -> GenerationOptions:
    """Any GenerationOptions parse_prompt can produce (max_num_images 4)."""
    transparent = draw(st.booleans())

    def maybe(strategy: st.SearchStrategy[Any]) -> Any:
        return draw(st.none() | strategy)

    size = draw(st.sampled_from(["none", "ar", "res"] if not transparent else ["none", "ar"]))
    speeds = list(RenderingSpeed) if not transparent else list(RenderingSpeed)[1:]
    negative = maybe(_texts(20))
    return GenerationOptions(
        aspect_ratio=draw(st.sampled_from(list(AspectRatioV3))) if size == "ar" else None,
        resolution=draw(st.sampled_from(list(ResolutionV3))) if size == "res" else None,
        negative_prompt=None if negative is None else normalize_text(negative),
        seed=maybe(st.integers(0, MAX_SEED)),
        rendering_speed=maybe(st.sampled_from(speeds)),
        style_type=None if transparent else maybe(st.sampled_from(list(StyleTypeV3))),
        style_preset=None if transparent else maybe(st.sampled_from(list(StylePresetV3))),
        magic_prompt=maybe(st.sampled_from(list(MagicPromptOption))),
        num_images=maybe(st.integers(1, 4)),
        color_palette=None if transparent else maybe(_palettes),
        image_weight=maybe(st.integers(1, 100)),
        transparent=transparent,
    )


@settings(max_examples=200, deadline=None)
@given(prompt=_texts(40), options=_valid_options())
def test_format_then_parse_round_trips(prompt: str, options: GenerationOptions) -> None:
    """parse_prompt(format_flags(p, o)) gives back the normalised prompt and the same options."""
    text = format_flags(prompt, options)
    assert parse_prompt(text) == (normalize_text(prompt), options)
    assert GenerationOptions.from_json(json.loads(json.dumps(options.to_json()))) == options


_FLAG_TOKENS = st.sampled_from(
    [f"--{name}" for name in FLAG_NAMES]
    + [f"—{name}" for name in FLAG_NAMES]
    + ["--AR", "--aspect", "--x", "--ar16:9", "--seed=", "--n9", "—", "--", "--İ", "--ǅ"]
)
_GARBAGE_VALUES = st.sampled_from(
    [
        "16:9",
        "16 x 9",
        "0x0",
        "99999x99999",
        "1024x1024",
        "#FF0000:0.5,#00FF00",
        "#FF0000:1e400",
        "#FF0000:",
        ",,,",
        "#",
        "ember",
        "oil painting",
        "flash",
        "5",
        "-1",
        "1e400",
        "nan",
        "inf",
        "٣",
        "1_000",
        "9" * 5000,
        "`",
        "",
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    text=st.one_of(
        st.text(),
        st.lists(st.one_of(_FLAG_TOKENS, _GARBAGE_VALUES, st.text(max_size=10)), max_size=12).map(
            " ".join
        ),
    ),
    max_num_images=st.integers(-2, 10),
    allow=st.none() | st.frozensets(st.sampled_from([*FLAG_NAMES, "--seed", "bogus"])),
    require_prompt=st.booleans(),
)
def test_parse_prompt_raises_only_invalid_input(
    text: str, max_num_images: int, allow: frozenset[str] | None, require_prompt: bool
) -> None:
    """Whatever the text, parse_prompt answers or raises InvalidInput, never anything else."""
    try:
        prompt, options = parse_prompt(
            text, max_num_images=max_num_images, allow=allow, require_prompt=require_prompt
        )
    except InvalidInput as error:
        assert str(error) and "\n" not in str(error)
        return
    assert prompt == normalize_text(prompt)
    check_options(options)


@settings(max_examples=200, deadline=None)
@given(
    values=st.dictionaries(
        st.sampled_from(
            [
                "aspect_ratio",
                "negative_prompt",
                "seed",
                "speed",
                "style",
                "preset",
                "magic_prompt",
                "num_images",
                "palette",
                "transparent",
                "image_weight",
                "resolution",
                "prompt",
            ]
        ),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(),
            st.text(),
            _GARBAGE_VALUES,
            st.lists(st.integers(), max_size=2),
        ),
    )
)
def test_options_from_typed_raises_only_user_errors(values: dict[str, Any]) -> None:
    """Typed options of any type either parse or raise InvalidInput."""
    try:
        options_from_typed(values)
    except UserError as error:
        assert isinstance(error, InvalidInput)
