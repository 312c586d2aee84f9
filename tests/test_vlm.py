"""The VLM track end to end on tiny randomly initialised Qwen2.5-VL models built offline in this session."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("captum")
torch = pytest.importorskip("torch")

from iapo_gym.agents.base import run_episode  # noqa: E402
from iapo_gym.agents.vlm.agent import VLMAgent  # noqa: E402
from iapo_gym.agents.vlm.attribution import (  # noqa: E402
    CHAT_LABEL,
    attribute_decision,
    image_cells,
    patch_grid,
)
from iapo_gym.agents.vlm.model import VLM  # noqa: E402
from iapo_gym.agents.vlm.prompt import Dialogue, Turn  # noqa: E402
from iapo_gym.agents.vlm.tiny import build_tiny_vlm  # noqa: E402
from iapo_gym.agents.vlm.tiny import main as tiny_main

import iapo_gym  # noqa: E402,F401  (registers the envs)
from iapo_gym.tools import letterbox  # noqa: E402

FAST = {"n_steps": 4}
BLOCKS = {"image", "query", "tool_outputs", "context", "tool_defs"}


@pytest.fixture(scope="module", autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add contention
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def student_path(tmp_path_factory):
    return build_tiny_vlm(tmp_path_factory.mktemp("vlm") / "student", seed=0)


@pytest.fixture(scope="session")
def teacher_path(tmp_path_factory):
    # larger, another seed and another tokenizer vocabulary: layouts must still match the student's
    return build_tiny_vlm(tmp_path_factory.mktemp("vlm") / "teacher", layers=3, hidden=96, seed=1, vocab_size=400)


@pytest.fixture(scope="session")
def agent(student_path):
    return VLMAgent(student_path, device="cpu", max_new_tokens=12)


def make_env(view_size=112, budget=3):
    return gym.make("VisualToolVQA-v0", view_size=view_size, budget=budget)


def bright_patch_scene(h=200, w=400, patch=(250, 50, 300, 100)):
    """A black original image with one bright square (x0, y0, x1, y1 in pixels)."""
    img = np.zeros((h, w, 3), np.uint8)
    x0, y0, x1, y1 = patch
    img[y0:y1, x0:x1] = 255
    return img


def view_of(img, box, size):
    import cv2

    h, w = img.shape[:2]
    x0, y0 = int(np.floor(box[0] * w)), int(np.floor(box[1] * h))
    x1, y1 = int(np.ceil(box[2] * w)), int(np.ceil(box[3] * h))
    region = img[y0:y1, x0:x1]
    top, left, nh, nw = letterbox(region.shape[0], region.shape[1], size)
    out = np.zeros((size, size, 3), np.uint8)
    out[top : top + nh, left : left + nw] = cv2.resize(region, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


# -- the tiny model -------------------------------------------------------------------------------------------
def test_tiny_cli_builds_a_loadable_model(tmp_path, capsys):
    assert tiny_main(["--out", str(tmp_path / "m"), "--layers", "1", "--hidden", "32", "--seed", "3"]) == 0
    assert "parameters" in capsys.readouterr().out
    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "iapo_tiny.json"):
        assert (tmp_path / "m" / name).is_file(), name
    vlm = VLM(tmp_path / "m", device="cpu")
    tok = vlm.tokenizer
    for special in ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<tool_call>", "</tool_call>"):
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1, special
    chat = vlm.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert "<|vision_start|><|image_pad|><|vision_end|>hi" in chat and chat.endswith("<|im_start|>assistant\n")


def test_rope_positions_are_3d_for_image_tokens(agent):
    env = make_env()
    obs, info = env.reset(seed=1)
    vlm = agent.vlm
    batch = vlm.collate([vlm.encode(Dialogue(obs["image"], obs["question"]))])
    img = batch.input_ids[0] == vlm.image_token_id
    pos = batch.position_ids[:, 0]
    assert pos.shape[0] == 3 and img.sum() == 16  # 112 px view: 8x8 patches of 14, merged 2x2
    assert not torch.equal(pos[1, img], pos[2, img])  # height and width rows differ: not 1-D positions
    assert torch.equal(pos[0, ~img], pos[1, ~img])  # text tokens: the same position on all three


# -- acting ---------------------------------------------------------------------------------------------------
def test_episode_at_view_448(agent):
    env = make_env(view_size=448, budget=2)
    result = run_episode(env, agent, seed=0)
    assert result.steps >= 1
    d = agent._tracker(0).dialogue
    assert d.image.shape == (448, 448, 3)
    enc = agent.vlm.encode(d)
    assert sum(k == "image" for k in enc.kinds) >= 256  # 448 px: 32x32 patches -> 16x16 tokens


def test_episode_errors_are_seen_next_turn(agent):
    env = make_env(budget=3)
    obs, info = env.reset(seed=3)
    agent.reset()
    torch.manual_seed(0)
    done, previous = False, None
    while not done:
        action = agent.act(obs, info)
        d = agent._tracker(0).dialogue
        if previous is None:
            assert d.turns == []
        else:  # what the last call returned is the newest turn of the chat the model just answered
            prev_action, prev_obs, prev_info = previous
            last = d.turns[-1]
            assert last.action == prev_action and last.text == prev_obs["tool_output"]
            if prev_info["error"]:
                assert last.text.startswith("error:") and last.image is None
        obs, reward, terminated, truncated, info = env.step(action)
        previous = (action, obs, info)
        done = terminated or truncated
    assert len(agent._tracker(0).dialogue.turns) == env.unwrapped.max_budget - obs["budget"] - 1


MALFORMED = [
    "I think the answer is in the top left",  # no tags
    '<tool_call>{"name": "zoom", "arguments": {"box": [0, 0, 0.5</tool_call>',  # broken JSON
    '<tool_call>{"name": "zom", "arguments": {"box": [0, 0, 0.5, 0.5]}}</tool_call>',  # unknown tool
    '<tool_call>{"name": "zoom", "arguments": {"box": [0.5, 0.5, 1.5, 1.2]}}</tool_call>',  # box outside [0, 1]
    "<|im_end|><|image_pad|><|vision_start|> junk <tool_call>",  # special-token text, unclosed tag
]
EXPECTED = ["expected a tool call", "malformed JSON", "unknown tool 'zom'", "outside [0, 1]", "unclosed <tool_call>"]


def test_malformed_generations_are_errors_the_agent_sees(agent, monkeypatch):
    env = make_env(budget=len(MALFORMED) + 1)
    obs, info = env.reset(seed=5)
    agent.reset()
    scripted = iter(MALFORMED)
    real_generate = agent.vlm.generate
    seen_prompts = []

    def fake_generate(dialogues, **kw):
        enc = agent.vlm.encode(dialogues[0])  # the prompt the model would get must encode (no crash)
        seen_prompts.append(agent.vlm.tokenizer.decode(enc.input_ids.tolist()))
        text = next(scripted)
        return [(text, [])]

    monkeypatch.setattr(agent.vlm, "generate", fake_generate)
    for i, expected in enumerate(EXPECTED):
        action = agent.act(obs, info)
        assert action == MALFORMED[i]
        obs, reward, terminated, truncated, info = env.step(action)
        assert not terminated and not truncated
        assert expected in info["error"], (expected, info["error"])
        assert obs["tool_output"].startswith("error:") and reward == pytest.approx(-0.1)
    monkeypatch.setattr(agent.vlm, "generate", real_generate)
    action = agent.act(obs, info)  # the real model, on a chat full of errors: still a string, no crash
    assert isinstance(action, str)
    d = agent._tracker(0).dialogue
    assert [t.action for t in d.turns] == MALFORMED
    for turn, expected in zip(d.turns, EXPECTED):
        assert turn.text.startswith("error:") and expected in turn.text
    # the last prompt shows every error to the model, and only the glance counts as an image
    assert all(e in seen_prompts[-1] for e in EXPECTED[:-1])
    enc = agent.vlm.encode(d)
    assert len(enc.images) == 1 and sum(k == "image" for k in enc.kinds) == 16


def test_act_batch_and_padding(agent):
    envs = gym.vector.SyncVectorEnv([lambda: make_env() for _ in range(2)])
    obs, infos = envs.reset(seed=[10, 11])
    agent.reset()
    actions = agent.act_batch(obs, infos)
    assert len(actions) == 2 and all(isinstance(a, str) for a in actions)
    envs.step(actions)
    envs.close()
    # left padding and 3-D positions: batched log-probs equal the single ones
    vlm = agent.vlm
    e1, e2 = make_env(), make_env()
    (o1, _), (o2, _) = e1.reset(seed=1), e2.reset(seed=2)
    d2 = Dialogue(o2["image"], o2["question"] + " and more words here", [Turn("<answer>x</answer>", "error: nope")])
    enc = [
        vlm.encode(Dialogue(o1["image"], o1["question"]), "<answer>12</answer>"),
        vlm.encode(d2, '<tool_call>{"name": "zoom"}</tool_call>'),
    ]
    with torch.no_grad():
        both = vlm.action_logprobs(vlm.collate(enc))
        single = [vlm.action_logprobs(vlm.collate([e]))[0] for e in enc]
    for b, s in zip(both, single):
        assert torch.allclose(b, s, atol=1e-4)


# -- attribution ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "config",
    [
        {"method": "integrated_gradients", **FAST},
        {"method": "integrated_gradients", "image_input": "pixels", **FAST},
        {"method": "gradient_x_input"},
        {"method": "attention", "attention_mode": "rollout"},
        {"method": "attention", "attention_mode": "last_layer"},
    ],
)
def test_attribution_is_a_distribution_over_blocks(agent, config):
    env = make_env()
    obs, info = env.reset(seed=7)
    crop = view_of(info["scene"].image, (0.0, 0.0, 0.5, 0.5), 112)
    d = Dialogue(
        obs["image"],
        obs["question"],
        [Turn('<tool_call>{"name": "ocr"}</tool_call>', "42 apples", crop, (0.0, 0.0, 0.5, 0.5))],
        source_hw=info["scene"].image.shape[:2],
    )
    attr = attribute_decision(agent.vlm, d, "<answer>42</answer>", config=config)
    blocks = attr.blocks()
    assert set(blocks) == BLOCKS
    assert math.isclose(sum(blocks.values()), 1.0, abs_tol=1e-9)
    assert np.all(attr.values >= 0)
    assert all(v > 0 for v in blocks.values()), blocks
    assert attr.layout.context_tokens[-1] == CHAT_LABEL and attr.layout.grid == 4
    assert attr.layout.query_tokens[:3] == tuple(iapo_gym.text.tokenize(obs["question"]))[:3]
    assert attr.layout.output_tokens == ("42", "apples")


def test_teacher_layout_matches_the_students(agent, teacher_path):
    from iapo_gym.agents.vlm.teacher import VLMTeacher

    teacher = VLMTeacher(teacher_path, device="cpu", attribution=FAST)
    assert len(teacher.vlm.tokenizer) != len(agent.vlm.tokenizer)  # another tokenizer...
    env = make_env()
    obs, info = env.reset(seed=8)
    action = '<tool_call>{"name": "zoom", "arguments": {"box": [0, 0, 0.5, 0.5]}}</tool_call>'
    t = teacher.attribute(obs, info, action)
    s = agent.attribute(obs, info, action, **FAST)
    assert t.layout == s.layout  # ... same components
    assert math.isclose(sum(t.blocks().values()), 1.0, abs_tol=1e-9)
    assert 0.0 <= iapo_gym.attribution.kl(t, s) < 20
    # the shared Teacher protocol: attribute(observation, info, layout, action), in the layout asked for
    compact = iapo_gym.attribution.layout_for_observation(obs, grid=3, query_length=16, output_length=8)
    c = teacher.attribute(obs, info, compact, action)
    assert c.layout == compact and set(c.blocks()) == {"image", "query", "tool_outputs"}
    assert math.isclose(sum(c.blocks().values()), 1.0, abs_tol=1e-9)


def test_patch_rows_map_to_the_bright_cell(agent):
    """``pixel_values`` rows are (t, h/2, w/2, 2, 2)-ordered: un-permuted, a bright patch lands in its cell."""
    vlm = agent.vlm
    img = bright_patch_scene()  # 200 x 400, bright at x 250-300, y 50-100: cell (row 1, col 2) of 4x4
    for box, size in (((0.0, 0.0, 1.0, 1.0), 112), ((0.5, 0.0, 1.0, 0.5), 112), ((0.0, 0.0, 1.0, 1.0), 448)):
        view = view_of(img, box, size)
        pv, thw = vlm.process_image(view)
        brightness = pv.float().mean(-1).numpy()
        brightness -= brightness.min()
        cells = image_cells(patch_grid(brightness, thw.tolist(), 2), box, size, 4, img.shape[:2]).reshape(4, 4)
        assert np.unravel_index(cells.argmax(), cells.shape) == (1, 2), (box, size, cells.round(2))
        assert cells[1, 2] > 0.99 * cells.sum()
        if size == 112 and box[0] == 0.0:  # reading the rows in raster order puts the patch elsewhere
            _, h, w = thw.tolist()
            naive = image_cells(brightness.reshape(h, w), box, size, 4, img.shape[:2]).reshape(4, 4)
            assert np.unravel_index(naive.argmax(), naive.shape) != (1, 2)


def test_pixel_attribution_finds_the_bright_patch(agent):
    img = bright_patch_scene()
    glance = view_of(img, (0.0, 0.0, 1.0, 1.0), 112)
    d = Dialogue(glance, "What colour is the square?", source_hw=img.shape[:2])
    for method in ("integrated_gradients", "gradient_x_input"):
        attr = attribute_decision(
            agent.vlm,
            d,
            "<answer>white</answer>",
            config={"method": method, "image_input": "pixels", "pixel_baseline": "black", **FAST},
        )
        cells = attr.block("image").reshape(4, 4)
        # with a black baseline black pixels get exactly nothing: all image mass is on the patch's cell
        assert cells[1, 2] > 0 and cells[1, 2] == pytest.approx(cells.sum(), rel=1e-9), cells
    # from a white baseline (a blank page) the black background has input of its own: mass off the patch
    attr = attribute_decision(
        agent.vlm,
        d,
        "<answer>white</answer>",
        config={"method": "gradient_x_input", "image_input": "pixels", "pixel_baseline": "white", **FAST},
    )
    cells = attr.block("image").reshape(4, 4)
    assert cells.sum() - cells[1, 2] > 0.5 * cells.sum(), cells
    with pytest.raises(ValueError, match="pixel_baseline must be one of black, white, zeros"):
        attribute_decision(agent.vlm, d, "<answer>white</answer>", config={"pixel_baseline": "grey"})


# -- persistence --------------------------------------------------------------------------------------------------
def _outputs(agent, obs, info):
    agent.reset()
    d = agent.dialogue(obs, info)
    text = agent.generate([d], do_sample=False)[0][0]
    with torch.no_grad():
        lp = agent.vlm.action_logprobs(agent.vlm.collate([agent.vlm.encode(d, "<answer>7</answer>")]))[0]
    agent.reset()
    return text, lp


def test_save_load_gives_the_same_outputs(student_path, tmp_path):
    from iapo_gym.agents.checkpoint import load_agent

    env = make_env()
    obs, info = env.reset(seed=4)
    agent = VLMAgent(student_path, device="cpu", max_new_tokens=10)
    with torch.no_grad():  # make it differ from the folder it was loaded from
        for p in agent.vlm.model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    ref = _outputs(agent, obs, info)
    agent.save(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "model.safetensors").is_file()
    for other in (
        VLMAgent.load_checkpoint(tmp_path / "ckpt", device="cpu"),
        load_agent(tmp_path / "ckpt"),
        VLMAgent(student_path, device="cpu", max_new_tokens=10).load(tmp_path / "ckpt"),
    ):
        text, lp = _outputs(other, obs, info)
        assert text == ref[0] and torch.allclose(lp, ref[1])


def test_lora_save_load(student_path, tmp_path):
    env = make_env()
    obs, info = env.reset(seed=4)
    agent = VLMAgent(student_path, device="cpu", lora={"r": 4}, max_new_tokens=10)
    trainable = [n for n, p in agent.vlm.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    base = _outputs(agent, obs, info)
    with torch.no_grad():
        for n, p in agent.vlm.model.named_parameters():
            if "lora_B" in n:
                p.add_(0.5 * torch.randn_like(p))
    ref = _outputs(agent, obs, info)
    assert not torch.allclose(ref[1], base[1])
    agent.save(tmp_path / "lora")
    assert (tmp_path / "lora" / "adapter_model.safetensors").is_file()
    loaded = VLMAgent.load_checkpoint(tmp_path / "lora", device="cpu")
    text, lp = _outputs(loaded, obs, info)
    assert text == ref[0] and torch.allclose(lp, ref[1], atol=1e-5)
